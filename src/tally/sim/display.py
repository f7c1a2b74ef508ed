"""What the demo shows on the terminal: a live view while it runs, a summary at the end.

Headless (or without a terminal), progress goes out as plain log lines instead.
"""

from __future__ import annotations

import json
import sys
from collections import deque
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

if TYPE_CHECKING:
    from tally.edge.service import EdgeService
    from tally.sim.demo import Demo
    from tally.sim.demo_access import DemoAccess
    from tally.sim.fleet import Fleet


def _sim_time(t_ms: int, offset_min: int) -> str:
    import datetime as dt

    tz = dt.timezone(dt.timedelta(minutes=offset_min))
    return dt.datetime.fromtimestamp(t_ms / 1000, tz).strftime("%H:%M:%S")


class Display:
    def __init__(self, demo: Demo, fleet: Fleet, headless: bool) -> None:
        self.demo = demo
        self.fleet = fleet
        self.console = Console(stderr=False)
        self.live_view = not headless and sys.stdout.isatty()
        self.live: Live | None = None
        self.notes: deque[str] = deque(maxlen=8)
        self._seen_events: dict[str, int] = {}
        self._seen_story: set[str] = set()
        self._last_line = 0.0
        from tally.sim.demo import TIME_SCALE, UTC_OFFSET_MIN

        self.scale = TIME_SCALE
        self.offset = UTC_OFFSET_MIN

    def start(self, cloud_url: str, token: str, access: DemoAccess) -> None:
        """The banner: the cloud's HTTPS URL, the CA to trust and this run's demo logins
        (the only place their passwords are shown)."""
        c = self.console
        c.print(
            f"[bold]tally demo[/] — site [cyan]{self.demo.site.site_id}[/], "
            f"{len(self.demo.site.devices) + 1} simulated devices, suite {self.demo.opts.suite}, "
            f"simulated time ×{self.scale}"
        )
        c.print(
            f"cloud API: {cloud_url}/v1/health  (read token: {token})", markup=False, soft_wrap=True
        )
        c.print(f"HTTPS: trust the demo CA {access.ca_file}", markup=False, soft_wrap=True)
        c.print("demo credentials, for 127.0.0.1 and this run only (POST /v1/session):")
        for x in access.logins:
            c.print(
                f"  tenant {x.tenant}  username {x.username}  password {x.password}  ({x.role})",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        c.print("[dim]all data is simulated (label sim=1)[/]")
        if self.live_view:
            self.live = Live(console=c, refresh_per_second=4, transient=False)
            self.live.start()

    def note(self, text: str) -> None:
        self.notes.append(text)
        if not self.live_view:
            self.console.print(text)

    def _table(self, s: dict[str, Any]) -> Table:
        t = Table(title="flow", show_header=True, header_style="bold")
        t.add_column("stage")
        t.add_column("count", justify="right")
        t.add_row("produced by devices (signed)", str(self.fleet.produced_total))
        t.add_row("lost in transit (radio)", str(len(self.fleet.lost)))
        t.add_row("injected by attackers", str(sum(self.fleet.injected.values())))
        t.add_row("received at edge", str(s["received"]))
        t.add_row("accepted", str(s["accepted"]))
        t.add_row("gaps certified (readings)", str(s["gaps_certified"]))
        t.add_row(
            "batches sealed / acked by cloud", f"{s['batches_sealed']} / {s['batches_acked']}"
        )
        anchored, final = self.demo.chain_status()
        t.add_row("batches anchored on the ledger", str(anchored))
        t.add_row("final checkpoints (quorum signed)", str(final))
        return t

    def _story(self) -> Panel | None:
        story = self.demo.story
        if story is None:
            return None
        lines = []
        for sc in story.scenario.values():
            mark = "[green]✓[/]" if sc.ok else "[dim]…[/]"
            lines.append(f"{mark} {sc.name}: [dim]{sc.outcome if sc.ok else sc.expected}[/]")
        return Panel("\n".join(lines), title="financing story (simulated trader, steel coil)")

    def _side(self, s: dict[str, Any]) -> Table:
        t = Table(title="rejected and detected", show_header=True, header_style="bold")
        t.add_column("what")
        t.add_column("count", justify="right")
        for k, v in sorted(s["rejected"].items()):
            t.add_row(f"[red]rejected[/] {k}", str(v))
        for k, v in sorted(s["events"].items()):
            t.add_row(f"[yellow]event[/] {k}", str(v))
        return t

    def update(self, edge: EdgeService) -> None:
        s = edge.gateway.stats()
        for rule, n in s["events"].items():
            if n > self._seen_events.get(rule, 0):
                self.note(f"{_sim_time(self.demo.clock(), self.offset)}  edge event: {rule} (×{n})")
            self._seen_events[rule] = n
        now = self.demo.clock()
        if self.demo.story is not None:
            for sc in self.demo.story.scenario.values():
                if sc.ok and sc.name not in self._seen_story:
                    self._seen_story.add(sc.name)
                    self.note(f"{_sim_time(now, self.offset)}  financing: {sc.name} — {sc.outcome}")
        if self.live is not None:
            head = f"simulated local time {_sim_time(now, self.offset)}"
            grid = Table.grid(expand=True)
            grid.add_row(self._table(s), self._side(s))
            parts: list[Any] = [
                grid,
                Panel("\n".join(self.notes) or "—", title="what the edge saw"),
            ]
            story = self._story()
            if story is not None:
                parts.append(story)
            body = Group(*parts)
            self.live.update(Panel(body, title=head))
        elif now - self._last_line >= 600_000:  # a line per 10 simulated minutes
            self._last_line = now
            anchored, final = self.demo.chain_status()
            self.console.print(
                f"{_sim_time(now, self.offset)}  produced {self.fleet.produced_total}  "
                f"accepted {s['accepted']}  batches acked {s['batches_acked']}  "
                f"anchored {anchored}  final checkpoints {final}  "
                f"rejected {sum(s['rejected'].values())}"
            )

    def finish(self, report: dict[str, Any]) -> None:
        self.stop()
        keys = (
            "readings_produced",
            "heartbeats_produced",
            "envelopes_stored",
            "gaps_certified",
            "unaccounted",
            "duplicates_stored",
            "rejected",
            "events",
            "registrations_on_chain",
            "batches_stored",
            "batches_anchored",
            "checkpoints_final",
            "reading_to_checkpoint_p50_s",
            "reading_to_checkpoint_p95_s",
        )
        t = Table(title="report", show_header=False)
        for k in keys:
            v = report.get(k)
            t.add_row(k, json.dumps(v) if isinstance(v, dict) else str(v))
        for b in report.get("bundles", []):
            t.add_row(f"bundle: {b['incident']}", str(b.get("bundle")))
        self.console.print(t)
        scenarios = report.get("scenarios", [])
        if scenarios:
            st = Table(title="financing story", show_header=True, header_style="bold")
            st.add_column("step")
            st.add_column("outcome")
            for sc in scenarios:
                mark = "[green]ok[/]" if sc["ok"] else "[red]NOT AS EXPECTED[/]"
                st.add_row(sc["name"], f"{mark} {sc['outcome']}")
            self.console.print(st)
        verdict = "every produced envelope is stored or certified missing"
        if report["unaccounted"] or report["duplicates_stored"]:
            verdict = "[red]some envelopes are unaccounted for[/]"
        self.console.print(verdict)
        stored, anchored = report.get("batches_stored", 0), report.get("batches_anchored", 0)
        if stored == anchored:
            self.console.print(
                f"every stored batch ({stored}) is anchored under a final checkpoint"
            )
        else:
            self.console.print(
                f"[red]{stored - anchored} of {stored} stored batches are not anchored[/]"
            )

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
