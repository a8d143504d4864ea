"""`gru-serve`'s page in a real browser: headless Chromium (Debian's `chromium` and `chromium-driver`) driven by
Selenium types two sentences, translates them, reads the translations, and switches the attention heatmap from
line 1 to line 2; the browser's every request goes to the server on 127.0.0.1. One server and one browser for the
module (about 10 s). Without a browser (or selenium) the tests skip, saying why; under CI (`CI=true`) they fail.

A screenshot of the page is written under pytest's temporary folder, its path printed (`pytest -s` shows it)."""

import dataclasses
import importlib.util
import json
import os
import urllib.parse

import pytest
from serving import save_tiny_model, served
from tiny import PAIRS

from modeling_gru_seq2seq.translate import translate

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1300"]
SENTENCES = [PAIRS[0][0], PAIRS[4][0]]  # "je suis content .", "elle a froid !"
WAIT_S = 60  # for each thing the page must show


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or `None`."""
    for module, install in (("selenium", "pip install selenium"), ("gradio", "pip install -e '.[serve]'")):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed ({install})"
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        return f"no {' and no '.join(missing)} (apt-get install chromium chromium-driver)"
    return None


@dataclasses.dataclass
class Visit:
    """What the browser saw of the page, step by step; `failure` is the step that did not happen, if one."""

    sentences: list[str]
    expected: list[str]  # translate()'s translations of `sentences`
    translations: str | None = None
    chosen: list[str] = dataclasses.field(default_factory=list)  # the line chooser's value: line 1's, then 2's
    heatmaps: list[tuple[str, bytes]] = dataclasses.field(default_factory=list)  # (img src, PNG of the element)
    requests: list[dict] = dataclasses.field(default_factory=list)  # {"url", "initiator", "document"}
    screenshot: str | None = None
    failure: str | None = None

    def check_finished(self) -> None:
        if self.failure:
            pytest.fail(f"the visit of the page stopped: {self.failure}")


def chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # the DevTools Network events
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def loaded_heatmap(driver) -> str | None:
    """The heatmap's `src` once its image has loaded and has pixels, else `None`."""
    return driver.execute_script(
        "const image = document.querySelector('#heatmap img');"
        "return image && image.complete && image.naturalWidth > 0 ? image.src : null;"
    )


def new_heatmap(shown: list[str]):
    """A wait condition: the heatmap's `src` once loaded, if it is not one of `shown`."""

    def condition(driver):
        src = loaded_heatmap(driver)
        return src if src is not None and src not in shown else False

    return condition


def use_the_page(driver, url: str, visit: Visit) -> None:
    """Type `visit.sentences`, translate, read, choose line 2; records each thing seen in `visit` as it goes."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    def wait(condition, what: str):
        visit.failure = f"{what} (waited {WAIT_S} s)"
        found = WebDriverWait(driver, WAIT_S).until(condition, f"{what}: not within {WAIT_S} s")
        visit.failure = None
        return found

    driver.get(f"{url}/")
    source = wait(expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, "#source textarea")), "the page")
    source.send_keys("\n".join(visit.sentences))  # Enter in a multi-line box is a new line
    driver.find_element(By.ID, "translate").click()
    output = driver.find_element(By.CSS_SELECTOR, "#translations textarea")
    visit.translations = wait(lambda _: output.get_attribute("value"), "the translations after the click")

    line = driver.find_element(By.CSS_SELECTOR, "#line input")  # Gradio's dropdown: a combobox and a list
    for number, sentence in enumerate(visit.sentences, 1):
        label = f"{number}: {sentence}"
        if number > 1:
            line.click()
            option = f'#line li[role="option"][aria-label="{label}"]'
            wait(
                expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, option)), f"the option {label!r}"
            ).click()
        src = wait(new_heatmap([src for src, _ in visit.heatmaps]), f"a new heatmap for line {number}")
        visit.chosen.append(line.get_attribute("value"))
        visit.heatmaps.append((src, driver.find_element(By.CSS_SELECTOR, "#heatmap img").screenshot_as_png))


def logged_requests(driver) -> list[dict]:
    """The browser's requests so far (DevTools `Network.requestWillBeSent`, and WebSockets): their URL, the
    script or document that asked (its URL, or the initiator's type) and the page they were for."""
    requests = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message["method"] == "Network.requestWillBeSent":
            initiator = params.get("initiator", {})
            frames = initiator.get("stack", {}).get("callFrames", [])
            where = initiator.get("url") or (frames[0]["url"] if frames else "") or initiator.get("type", "")
            requests.append({"url": params["request"]["url"], "initiator": where, "document": params["documentURL"]})
        elif message["method"] == "Network.webSocketCreated":
            requests.append({"url": params["url"], "initiator": "websocket", "document": ""})
    return requests


def is_local(url: str) -> bool:
    parsed = urllib.parse.urlsplit(url)
    return parsed.scheme in ("data", "blob") or parsed.hostname == "127.0.0.1"


@pytest.fixture(scope="module")
def visit(tmp_path_factory) -> Visit:
    """One visit of the page of a tiny model that knows `tiny.PAIRS`, by one headless Chromium."""
    reason = missing_browser()
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI needs the browser: {reason}")
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("browser")
    model, tokenizer = save_tiny_model(folder / "model")
    visit = Visit(SENTENCES, [translation.text for translation in translate(model.eval(), tokenizer, SENTENCES)])
    with served(folder / "model") as url:
        driver = chromium()
        try:
            use_the_page(driver, url, visit)
        except Exception as error:  # the tests say which step failed; the requests are still checked
            visit.failure = f"{visit.failure or 'the browser'}: {type(error).__name__}: {str(error).strip()}"
        finally:
            visit.screenshot = str(folder / "page.png")
            driver.save_screenshot(visit.screenshot)
            print(f"\nthe page in Chromium: {visit.screenshot}")
            visit.requests = logged_requests(driver)
            driver.quit()
    return visit


def test_page_translates_both_lines(visit):
    assert visit.translations is not None, visit.failure
    assert visit.translations.splitlines() == visit.expected, f"screenshot: {visit.screenshot}"


def test_heatmap_follows_the_chosen_line(visit):
    visit.check_finished()
    assert visit.chosen == [f"{number}: {sentence}" for number, sentence in enumerate(visit.sentences, 1)]
    (first_src, first_png), (second_src, second_png) = visit.heatmaps
    assert "/gradio_api/file=" in first_src  # an image the server wrote, not a stale one
    assert first_src != second_src and first_png != second_png, f"screenshot: {visit.screenshot}"


def test_browser_requests_stay_on_the_machine(visit):
    outside = [request for request in visit.requests if not is_local(request["url"])]
    assert not outside, "the browser fetched from outside 127.0.0.1:\n" + "\n".join(
        f"  {request['url']}  (asked by {request['initiator']}, for {request['document']})" for request in outside
    )
    urls = [request["url"] for request in visit.requests]
    assert any("/gradio_api/queue/join" in url for url in urls), "no translation request was logged"
    assert any("/gradio_api/file=" in url for url in urls), "no heatmap was fetched"
    visit.check_finished()
