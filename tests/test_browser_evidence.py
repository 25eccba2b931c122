"""In Debian's Chromium: the officer's tip page plays a cleaned voice note and shows a PDF.

A voice note (AMR, which no browser plays) becomes AAC in M4A; the page's <audio> loads it
from the view route (sandboxed, no-store) and knows its duration. The PDF is shown by the
browser's own viewer in a frame of the page, under the file's ``sandbox`` policy.
"""

from __future__ import annotations

import time
from pathlib import Path

from playwright.sync_api import Browser, expect

from tests import media_samples as samples
from tests.browser import log_in, shot
from tests.conftest import COMMUNE_OA
from tests.test_evidence import USER, accept, upload
from tipline.jobs.media import fetch_attachment
from tipline.runtime import Runtime
from tipline.zalo.sender import build_event

# Chromium's built-in PDF viewer (an extension of the browser itself).
PDF_VIEWER = "chrome-extension://mhjfbmdgcfjbbpaeojofohoefgiehjai/"


def test_the_officer_plays_a_voice_note_and_reads_a_pdf(
    browser: Browser, runtime: Runtime, sim: str, units: dict[str, str], tmp_path: Path
) -> None:
    voice = upload(sim, "voice.amr", samples.amr_voice_note(2), "audio")
    tip_id, voice_id = accept(runtime, build_event(COMMUNE_OA, USER, audio=voice))
    pdf = upload(sim, "report.pdf", samples.pdf_with_metadata(), "file")
    _, pdf_id = accept(runtime, build_event(COMMUNE_OA, USER, file=pdf))
    assert [fetch_attachment(voice_id), fetch_attachment(pdf_id)] == ["stored", "stored"]

    context = browser.new_context(viewport={"width": 1000, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    log_in(page, sim, "canbo", units["totp:canbo"])
    page.goto(f"{sim}/triage/tips/{tip_id}")
    audio = page.locator("audio.evidence-audio")
    expect(audio).to_have_count(1)
    duration = audio.evaluate(
        """a => new Promise((done, fail) => {
            if (a.readyState >= 1) return done(a.duration);
            a.addEventListener('loadedmetadata', () => done(a.duration));
            a.addEventListener('error', () => fail(new Error('audio error ' + a.error.code)));
            a.load();
        })"""
    )
    assert 1.5 < duration < 3

    frame_element = page.locator("iframe.evidence-pdf")
    expect(frame_element).to_have_count(1)
    frame = frame_element.element_handle().content_frame()
    assert frame is not None
    frame.wait_for_load_state()
    assert frame.evaluate("document.contentType") == "application/pdf"
    # Chromium's PDF viewer took the frame (not an error page, not a download): its frames
    # appear under the PDF's, one of them the viewer with the document's pages.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        viewers = [f for f in page.frames if f.url.startswith(PDF_VIEWER)]
        if viewers and viewers[0].locator("pdf-viewer").count() == 1:
            break
        page.wait_for_timeout(200)
    else:
        raise AssertionError([f.url for f in page.frames])
    shot(page, tmp_path, "evidence-tip")
    assert not [p for p in problems if "Content Security Policy" in p], problems
    context.close()
