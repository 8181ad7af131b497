"""End to end in a real headless Chromium: upload a file on the web page, read the label.

Debian's ``chromium`` + ``chromium-driver`` and Selenium are installed by ``make browser``,
a step of ``make test`` before pytest (idempotent; CI runs as root); no test installs
anything. Without them the tests skip, saying what is missing. The browser is kept off the
network (no background, component, sync or QUIC traffic; a fresh profile); the page
itself loads nothing from outside the test server.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import sonotype
from sonotype.serve import create_app
from test_serve import tiny_model

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
BROWSER_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--disable-extensions", "--disable-default-apps",
    "--no-default-browser-check", "--metrics-recording-only", "--window-size=1100,1000",
)


def _missing() -> list[str]:
    """What the browser tests need and this machine lacks (empty when ready)."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    return missing


@pytest.fixture(scope="module")
def browser_ready() -> None:
    missing = _missing()
    if missing:
        pytest.skip(f"browser tests need {', '.join(missing)}: run `make browser` (Debian chromium, "
                    "chromium-driver; root) to install them")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """The app under uvicorn in a thread on a free loopback port: (url, classifier, files)."""
    import uvicorn

    model_dir, files = tiny_model(tmp_path_factory)
    clf = sonotype.load_model(model_dir)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(clf), host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        if time.monotonic() > deadline or not th.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", clf, files
    srv.should_exit = True
    th.join(10)


@pytest.fixture
def driver(browser_ready, tmp_path: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in (*BROWSER_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        opts.add_argument(flag)
    d = webdriver.Chrome(options=opts, service=Service(str(CHROMEDRIVER)))
    d.set_page_load_timeout(30)
    yield d
    d.quit()
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)


def _wait_state(d, timeout: float = 30) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    body = d.find_element(By.TAG_NAME, "body")
    WebDriverWait(d, timeout).until(lambda _: body.get_attribute("data-state") in ("done", "error"))
    return body.get_attribute("data-state")


def _png_pixels(path: Path) -> np.ndarray:
    import matplotlib.image as mpimg

    return mpimg.imread(str(path))


def test_upload_shows_label_bars_timeline_and_screenshot(server, driver, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, clf, files = server
    audio = files[3]
    want = clf.predict(audio, window=0.25, hop=0.25)
    driver.get(url + "/")
    # The model description is fetched on load: the label chips appear.
    WebDriverWait(driver, 15).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#labels li")) == len(clf.labels))
    assert driver.find_element(By.ID, "model-id").text == clf.model_id
    driver.find_element(By.CSS_SELECTOR, "details.options summary").click()
    driver.find_element(By.ID, "window").send_keys("0.25")
    driver.find_element(By.ID, "file").send_keys(str(audio))
    assert _wait_state(driver) == "done", driver.find_element(By.ID, "error").text

    assert driver.find_element(By.ID, "top-label").text == want.label
    bars = driver.find_elements(By.CSS_SELECTOR, "#probs li")
    assert [b.get_attribute("data-label") for b in bars] == sorted(clf.labels, key=lambda k: -want.probabilities[k])
    assert bars[0].find_element(By.CSS_SELECTOR, ".val").text == f"{100 * want.probabilities[want.label]:.1f} %"
    segs = driver.find_elements(By.CSS_SELECTOR, "#timeline .seg")
    assert [s.text for s in segs] == [s.label for s in want.segments]
    canvas = driver.find_element(By.ID, "waveform")
    assert canvas.size["width"] > 300

    shot = tmp_path / "page.png"
    assert driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    px = _png_pixels(shot)
    assert px.shape[0] > 500 and px.shape[1] > 800
    assert float(px[..., :3].std()) > 0.05  # not a blank page
    print(f"\nscreenshot: {shot}")


def test_bad_file_shows_error_in_words(server, driver, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    url, _clf, _files = server
    bad = tmp_path / "notes.wav"
    bad.write_text("these are words, not sound\n" * 20)
    driver.get(url + "/")
    driver.find_element(By.ID, "file").send_keys(str(bad))
    assert _wait_state(driver) == "error"
    err = driver.find_element(By.ID, "error")
    assert err.is_displayed()
    assert "not in an audio format" in err.text and "request id" in err.text
    assert not driver.find_element(By.ID, "result").is_displayed()


def test_api_docs_render_offline(server, driver) -> None:
    """/docs is rendered from /openapi.json by a local script (FastAPI's Swagger UI needs a CDN)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, _clf, _files = server
    driver.get(url + "/docs")
    WebDriverWait(driver, 15).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".op")) >= 3)
    text = driver.find_element(By.ID, "ops").text
    assert "/v1/classify" in text and "/v1/model" in text and "/healthz" in text
    assert "window" in text and "413" in text
