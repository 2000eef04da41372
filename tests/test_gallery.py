"""`dreamfx gallery`: every preset rendered into one HTML page, checked in a real browser (headless Chromium)."""

from __future__ import annotations

import functools
import html.parser
import http.server
import json
import subprocess
import threading
from pathlib import Path

from click.testing import CliRunner

from dreamfx.cli.commands import cli
from dreamfx.plugin.presets import preset_names
from conftest import cli_output, require_system

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class ResultParser(html.parser.HTMLParser):
    """Pulls the text of <pre id="result"> out of a dumped DOM."""

    def __init__(self):
        super().__init__()
        self.inside, self.text = False, ""

    def handle_starttag(self, tag, attrs):
        self.inside = tag == "pre" and ("id", "result") in attrs

    def handle_data(self, data):
        if self.inside:
            self.text += data


def serve(root: Path) -> http.server.ThreadingHTTPServer:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def page_report(chromium: str, url: str, page: str, profile: Path) -> dict:
    """What tests/gallery_check.html (served at ``url``/check.html) reports of ``page`` loaded in headless Chromium:
    {"title", "images": [{src, ok}], "audios": [{src, ok, duration}]}."""
    dom = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=20000",
                          "--dump-dom", f"{url}/check.html?page={page}"], capture_output=True, text=True,
                         timeout=120).stdout
    parser = ResultParser()
    parser.feed(dom)
    return json.loads(parser.text)


# Presets of every kind: the genre model, a guided dream (the gallery gives it the bundled guide), the live student
# on onnxruntime, the students' ensemble before Distortion.  That every shipped preset renders the example clip is
# tests/test_presets.py's; this test is about the page.
GALLERY_PRESETS = ["default", "guide", "live-jazz", "msd-metal"]


def test_gallery_renders_presets_and_loads_in_chromium(tmp_path, measured):
    chromium = require_system("chromium", "chromium")
    names = GALLERY_PRESETS
    assert set(names) <= set(preset_names())
    cli_output("gallery", "-o", str(tmp_path / "gal"), "--seconds", "2", *[f"--preset={name}" for name in names])
    for name in names:
        assert (tmp_path / "gal" / "audio" / f"{name}.flac").stat().st_size > 10_000
        assert (tmp_path / "gal" / "figures" / f"{name}.png").stat().st_size > 10_000
    (tmp_path / "check.html").write_text((Path(__file__).parent / "gallery_check.html").read_text())
    server = serve(tmp_path)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        page = page_report(chromium, url, "gal/index.html", tmp_path / "profile")
        shot = tmp_path / "gallery.png"
        subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1100,1400",
                        f"--screenshot={shot}", f"{url}/gal/index.html"], capture_output=True, timeout=120)
    finally:
        server.shutdown()
    assert page["title"] == "dreamfx preset gallery"
    assert [i["src"] for i in page["images"]] == [f"figures/{n}.png" for n in names]
    assert [a["src"] for a in page["audios"]] == ["audio/input.flac"] + [f"audio/{n}.flac" for n in names]
    assert all(i["ok"] for i in page["images"]), page["images"]
    assert all(a["ok"] and abs(a["duration"] - 2.0) < 0.01 for a in page["audios"]), page["audios"]
    import matplotlib.image
    pixels = matplotlib.image.imread(str(shot))
    measured(f"gallery: {len(names)} presets, {len(page['images'])} figures and {len(page['audios'])} players resolved "
             f"in Chromium; screenshot {pixels.shape[1]}x{pixels.shape[0]}, pixel std {pixels.std():.3f}")
    assert pixels.shape[:2] == (1400, 1100) and pixels.std() > 0.05  # a page was drawn, not a blank window


def test_gallery_refuses_a_file_as_folder(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("keep me")
    result = CliRunner().invoke(cli, ["gallery", "-o", str(target)], standalone_mode=False)
    assert "is a file: give a folder" in str(result.exception) and target.read_text() == "keep me"
