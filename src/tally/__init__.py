"""tally: device-edge-cloud-chain supply-chain finance with signed IoT evidence."""

__version__ = "0.1.0"
