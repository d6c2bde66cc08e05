"""One self-contained HTML page of a run: its plots, round table, committees and flags.

Everything is inside the file (plots as base64 PNG ``data:`` URIs, the style inline), so it
can be mailed or archived beside the JSON report and opened anywhere without a network.
"""

import base64
import html
import json
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from flare.cli.display import attempt_failure, human_bytes, round_notes
from flare.federation.report import ReportError, RoundRecord, SimulationReport

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; }
h1, h2, h3 { font-weight: 600; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font-size: 12px; }
.warning { color: #b00; font-weight: 600; }
.plots img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }
details { margin: 0.3em 0 0.8em; }
"""


def write_html_report(report: SimulationReport, path: Path) -> Path:
    """Write the run's report page to ``path``; return ``path``."""
    page = render_html_report(report)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise ReportError(
            f"cannot write the HTML report to {path}: {exc.strerror or exc}"
        ) from None
    return path


def render_html_report(report: SimulationReport) -> str:
    """The report page as one string of HTML."""
    config = report.config
    title = f"flare simulate: {config.get('dataset')} / {config.get('model')}"
    sections = [
        f"<h1>{_text(title)}</h1>",
        _summary(report),
        "<h2>Plots</h2>",
        f'<div class="plots">{"".join(_embedded_plots(report))}</div>',
        "<h2>Rounds</h2>",
        _round_table(report.rounds, config.get("rounds")),
        *(_round_details(record) for record in report.rounds),
        *(_privacy(report) if report.privacy is not None else []),
        "<h2>Configuration</h2>",
        _key_values(config),
    ]
    body = "\n".join(sections)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_text(title)}</title>\n<style>{STYLE}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )


def _embedded_plots(report: SimulationReport) -> Iterable[str]:
    """The PNGs ``--plot`` writes, each inlined as a ``data:`` URI."""
    from flare.cli.plots import write_plots

    with tempfile.TemporaryDirectory(prefix="flare-html-") as directory:
        for png in write_plots(report, Path(directory)):
            encoded = base64.b64encode(png.read_bytes()).decode("ascii")
            yield f'<img alt="{_text(png.stem)}" src="data:image/png;base64,{encoded}">'


def _summary(report: SimulationReport) -> str:
    if not report.rounds:
        return "<p>No round finished.</p>"
    final = report.final
    ratio = final["bytes_raw"] / final["bytes_up"] if final["bytes_up"] else 0.0
    rows = {
        "final accuracy": f"{final['accuracy']:.4f}",
        "final loss": f"{final['loss']:.4f}",
        "uploaded": f"{human_bytes(final['bytes_up'])} of {human_bytes(final['bytes_raw'])} "
        f"raw ({ratio:.1f}x smaller)",
        "wall time": f"{report.seconds:.1f} s",
    }
    if final["attack_success"] is not None:
        rows["backdoor success"] = f"{final['attack_success']:.4f}"
    detection = final["detection"]
    if detection["malicious_flagged"] is not None:
        rows["malicious submissions flagged"] = f"{detection['malicious_flagged']:.0%}"
    if detection["honest_flagged"] is not None:
        rows["honest submissions flagged"] = f"{detection['honest_flagged']:.0%}"
    if final["epsilon"] is not None:
        rows["ε spent (max over clients)"] = f"{final['epsilon']:.3g}"
    interrupted = (
        f'<p class="warning">Interrupted: {_text(report.interrupted)}</p>'
        if report.interrupted
        else ""
    )
    return interrupted + _key_values(rows)


def _round_table(rounds: list[RoundRecord], planned: Any) -> str:
    protocol = any(r.protocol is not None for r in rounds)
    privacy = any(r.privacy is not None for r in rounds)
    head = ["round", "accuracy", "loss", "sent", "raw", "ratio", "flagged", "malicious"]
    head += ["committee", "global model"] if protocol else []
    head += ["ε"] if privacy else []
    head += ["seconds"]
    lines = ["<table>", "<tr>" + "".join(f"<th>{_text(h)}</th>" for h in head) + "</tr>"]
    for r in rounds:
        ratio = r.bytes_raw / r.bytes_up if r.bytes_up else 0.0
        caught = len(set(r.flagged) & set(r.malicious))
        cells = [
            _num(f"{r.round}/{planned}" if planned is not None else r.round),
            _num(f"{r.accuracy:.4f}"),
            _num(f"{r.loss:.4f}"),
            _num(human_bytes(r.bytes_up)),
            _num(human_bytes(r.bytes_raw)),
            _num(f"{ratio:.1f}x"),
            _num(len(r.flagged)),
            _num(f"{len(r.malicious)} ({caught} flagged)"),
        ]
        if protocol:
            committee = (r.protocol or {}).get("committee", [])
            model = (r.protocol or {}).get("global_model", "")
            cells += [_num(len(committee)), f"<td><code>{_text(model)}</code></td>"]
        if privacy:
            cells.append(_num(f"{r.privacy['epsilon']:.3g}" if r.privacy else "–"))
        cells.append(_num(f"{r.seconds:.2f}"))
        lines.append(f'<tr id="round-{r.round}">' + "".join(cells) + "</tr>")
    lines.append("</table>")
    return "\n".join(lines)


def _round_details(record: RoundRecord) -> str:
    """Committee, failed attempts, warnings and flags of one round, folded."""
    parts = [f"<summary>Round {record.round}</summary>"]
    notes = [n.strip() for n in round_notes(record) if n.strip().startswith("WARNING")]
    parts += [f'<p class="warning">{_text(note)}</p>' for note in notes]
    protocol = record.protocol
    if protocol is not None:
        for failed in protocol.get("failed_attempts", []):
            parts.append(
                f"<p>Attempt {failed['attempt']} failed: {_text(attempt_failure(failed))}</p>"
            )
        parts.append(f"<h3>Committee (attempt {protocol['attempt']})</h3>")
        parts.append(
            _table(
                ["member", "address", "VRF output"],
                [[s["member"], s["address"], s["vrf_output"]] for s in protocol["committee"]],
            )
        )
        parts.append("<h3>Proposals and votes</h3>")
        votes: dict[int, list[str]] = {}
        for vote in protocol["votes"]:
            verdict = "approve" if vote["approve"] else "reject"
            votes.setdefault(vote["proposal"], []).append(f"{vote['member']}: {verdict}")
        parts.append(
            _table(
                ["proposal", "by", "model", "votes"],
                [
                    [p["id"], p["proposer"], p["model"], ", ".join(votes.get(p["id"], []))]
                    for p in protocol["proposals"]
                ],
            )
        )
    flagged = [[c, record.reasons.get(c, "")] for c in record.flagged]
    rejected = [[c, reason] for c, reason in record.rejected.items()]
    parts.append("<h3>Flagged clients</h3>")
    parts.append(_table(["client", "reason"], flagged) if flagged else "<p>none</p>")
    if rejected:
        parts.append("<h3>Rejected submissions</h3>")
        parts.append(_table(["client", "reason"], rejected))
    if record.dropped:
        parts.append(f"<p>Dropped out: {_text(', '.join(record.dropped))}</p>")
    return f'<details id="details-{record.round}">' + "\n".join(parts) + "</details>"


def _privacy(report: SimulationReport) -> list[str]:
    return ["<h2>Privacy</h2>", _key_values(report.privacy or {})]


def _key_values(values: dict[str, Any]) -> str:
    rows = [[key, value] for key, value in values.items()]
    return _table(["", ""], rows, header=False)


def _table(head: list[str], rows: list[list[Any]], header: bool = True) -> str:
    lines = ["<table>"]
    if header:
        lines.append("<tr>" + "".join(f"<th>{_text(h)}</th>" for h in head) + "</tr>")
    for row in rows:
        lines.append("<tr>" + "".join(f"<td>{_cell(value)}</td>" for value in row) + "</tr>")
    lines.append("</table>")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, dict | list):
        return f"<code>{_text(json.dumps(value, sort_keys=True))}</code>"
    return _text(value)


def _num(value: Any) -> str:
    return f'<td class="num">{_text(value)}</td>'


def _text(value: Any) -> str:
    return html.escape(str(value))
