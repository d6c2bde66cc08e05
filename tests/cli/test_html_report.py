"""`flare simulate --html`: one page that holds the whole run and reaches for nothing outside."""

import base64
from html.parser import HTMLParser
from pathlib import Path

import pytest

from flare.cli import main
from flare.cli.html_report import render_html_report
from flare.federation.report import RoundRecord, SimulationReport

URL_ATTRIBUTES = {"src", "href", "action", "data", "poster", "srcset", "background"}


class PageContents(HTMLParser):
    """What a browser would load or show from the page: rows, images, every URL it names."""

    def __init__(self) -> None:
        super().__init__()
        self.row_ids: list[str] = []
        self.images: list[bytes] = []
        self.urls: list[str] = []
        self.tags: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        values = dict(attrs)
        if tag == "tr" and values.get("id"):
            self.row_ids.append(values["id"])
        for name, value in attrs:
            if name in URL_ATTRIBUTES and value is not None:
                self.urls.append(value)
        if tag == "img":
            source = values.get("src") or ""
            prefix = "data:image/png;base64,"
            if source.startswith(prefix):
                self.images.append(base64.b64decode(source.removeprefix(prefix)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(page: str) -> PageContents:
    contents = PageContents()
    contents.feed(page)
    contents.close()
    return contents


@pytest.mark.slow
def test_simulate_html_holds_every_round_its_plots_and_committees_and_no_external_url(
    tmp_path: Path,
) -> None:
    page_path = tmp_path / "run" / "report.html"
    code = main(
        [
            "simulate",
            "--quiet",
            "--model",
            "logreg",
            "--rounds",
            "3",
            "--clients",
            "6",
            "--malicious",
            "1",
            "--html",
            str(page_path),
        ]
    )
    assert code == 0
    contents = _parse(page_path.read_text(encoding="utf-8"))
    assert contents.row_ids == ["round-1", "round-2", "round-3"]
    # accuracy, bytes and scores: each a real PNG, not a link to one
    assert len(contents.images) >= 3
    assert all(png.startswith(b"\x89PNG") and len(png) > 5000 for png in contents.images)
    assert all(url.startswith("data:") for url in contents.urls), contents.urls
    assert not {"script", "link", "iframe"} & contents.tags
    text = " ".join(contents.text)
    assert "VRF output" in text and "Flagged clients" in text
    assert "Configuration" in text and "aggregator" in text


def test_flags_reasons_and_warnings_are_on_the_page_and_escaped() -> None:
    record = RoundRecord(
        round=1,
        accuracy=0.5,
        loss=1.0,
        bytes_up=1000,
        bytes_raw=4000,
        accepted=["client-0"],
        flagged=["client-1"],
        malicious=["client-1"],
        dropped=[],
        rejected={"client-2": "undecodable <blob>"},
        seconds=0.1,
        scores={},
        reasons={"client-1": "norm ratio 9.0 > 3.0"},
        timings={},
        protocol={
            "attempt": 0,
            "committee": [{"member": "client-1", "address": "0x01", "vrf_output": "0xab"}],
            "attackers_seated": ["client-1"],
            "proposals": [],
            "votes": [],
            "global_model": "bafkfinal",
            "failed_attempts": [],
        },
    )
    report = SimulationReport(config={"dataset": "digits", "model": "<mlp>"}, rounds=[record])
    page = render_html_report(report)
    contents = _parse(page)
    text = " ".join(contents.text)
    assert "norm ratio 9.0 > 3.0" in text
    assert "undecodable <blob>" in text and "undecodable <blob>" not in page  # escaped
    assert "WARNING: attackers held 1 of 1 seats" in text
    assert "0xab" in text and "bafkfinal" in text
    assert "script" not in contents.tags and "blob" not in contents.tags
