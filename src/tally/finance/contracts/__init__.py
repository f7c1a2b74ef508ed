"""The finance contracts the consortium's peers run beside the system contracts."""
