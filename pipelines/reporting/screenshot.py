"""A run card in headless Chromium at 1280 px: a PNG beside it, and checks that the page reads.

``python -m pipelines card --date D --screenshot`` opens ``run_card.html`` as a ``file://`` page (no
server, no network), saves a full-length PNG beside it (``run_card.png``) cropped to its content,
and reports what is wrong: a blank page, content cut off at the right edge (wider than 1280 px), or
a page longer than the screenshot. Look at the PNG too: the checks catch breakage, not ugliness.
Needs a Chromium binary (Debian: ``apt-get install chromium``).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

WIDTH = 1280
MAX_HEIGHT = 16000  # Chromium's window: the page must end above it
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def screenshot(page: Path, out: Path, height: int = MAX_HEIGHT) -> Path:
    """Render ``page`` in headless Chromium into ``out`` (a WIDTH x ``height`` PNG)."""
    browser = next((found for name in BROWSERS if (found := shutil.which(name))), None)
    if browser is None:
        raise FileNotFoundError(f"no headless browser found (tried {', '.join(BROWSERS)}): apt-get install chromium")
    # A throwaway profile, nothing read from or left in $HOME; Chromium's helper processes may still be writing
    # into it as they exit, which must not fail the screenshot.
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size={WIDTH},{height}",
                f"--screenshot={out}",
                page.resolve().as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    return out


def check(png: Path) -> tuple[list[str], int]:
    """What is wrong with the screenshot (empty if nothing), and the height the page's content ends at."""
    from PIL import Image

    image = Image.open(png).convert("L")
    width, height = image.size
    pixels = image.load()
    ink = [y for y in range(0, height, 4) if any(pixels[x, y] < 200 for x in range(0, width, 4))]
    problems = []
    if width != WIDTH:
        problems.append(f"the screenshot is {width} px wide, not {WIDTH}")
    if len(ink) < 100:
        problems.append("the page is (nearly) blank: did the card render?")
    right_edge = [y for y in range(0, height, 4) if any(pixels[x, y] < 200 for x in range(width - 12, width))]
    if right_edge:
        problems.append(f"content reaches the right edge at y={right_edge[0]}: the page is wider than {WIDTH} px")
    end = (ink[-1] + 40) if ink else height
    if end >= height:
        problems.append(f"the page runs past {height} px: it is longer than the screenshot")
    return problems, min(end, height)


def screenshot_card(page: Path) -> tuple[Path, list[str]]:
    """Screenshot ``page`` into ``run_card.png`` beside it, cropped to its content; returns it and the problems."""
    from PIL import Image

    out = page.with_suffix(".png")
    screenshot(page, out)
    problems, end = check(out)
    with Image.open(out) as image:
        image.crop((0, 0, WIDTH, end)).save(out)
    return out, problems
