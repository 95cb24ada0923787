"""The page at GET / in a real browser (Debian's headless Chromium, driven by selenium): it asks for the
API key, lists the adapters, labels a typed text as `predict` does, draws the probabilities as bars,
and shows label names as text, never as HTML."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import torch

pytest.importorskip("selenium")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402
from test_serving_batching import _healthy, free_port, wait_for  # noqa: E402

from sktuning import SKModel, SKTuningConfig, get_sk_model  # noqa: E402
from sktuning.inference.prediction import predict  # noqa: E402
from sktuning.sharing.zoo import load_backbone  # noqa: E402

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = [pytest.mark.browser, pytest.mark.subprocess,
              pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                 reason="Debian's chromium and chromium-driver are not installed (make install does it)")]
LABELS = ["<b>bold</b>", "<img src=x onerror=document.title='owned'>", "plain & simple"]


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("page")
    backbone, tokenizer = load_backbone(tiny_model_dir)
    torch.manual_seed(3)
    model = get_sk_model(backbone, tokenizer, SKTuningConfig(mode="prefix", text="w3 w4", num_labels=3,
                                                             label_names=LABELS))
    with torch.no_grad():  # trained-looking weights, so the three probabilities differ
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.3)
    model.save_pretrained(folder / "odd", {"model": tiny_model_dir, "max_length": 16})
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "sktuning.cli", "serve", "--adapter", f"odd={folder / 'odd'}",
                                "--port", str(port), "--api-key", "s3cret"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _healthy_with_key(url), "the server to start", timeout=120)
        yield url, folder, tiny_model_dir
    finally:
        process.terminate()
        process.wait(timeout=60)


def _healthy_with_key(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/health", headers={"Authorization": "Bearer s3cret"}, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))
    yield driver
    driver.quit()


def test_the_page_labels_typed_text_as_predict_does(server, browser):
    url, folder, tiny_model_dir = server
    browser.get(url + "/")
    wait = WebDriverWait(browser, 30)
    wait.until(lambda d: "401" in d.find_element(By.ID, "error").text)  # no key yet: the server says so
    browser.find_element(By.ID, "key").send_keys("s3cret")
    browser.find_element(By.ID, "connect").click()
    wait.until(lambda d: Select(d.find_element(By.ID, "adapter")).options)
    Select(browser.find_element(By.ID, "adapter")).select_by_value("odd")
    assert "SK-prefix" in browser.find_element(By.ID, "about").text
    browser.find_element(By.ID, "text").send_keys("w7 w8 w9")
    browser.find_element(By.ID, "run").click()
    wait.until(lambda d: d.find_element(By.ID, "label").text)

    backbone, tokenizer = load_backbone(tiny_model_dir)
    want = predict(SKModel.from_pretrained(backbone, folder / "odd", tokenizer=tokenizer).merge(), tokenizer,
                   ["w7 w8 w9"], max_length=16).records[0]
    assert browser.find_element(By.ID, "label").text == want["label"]
    rows = browser.find_elements(By.CSS_SELECTOR, "#bars .row")
    shown = {r.find_element(By.CLASS_NAME, "name").text: float(r.find_element(By.CLASS_NAME, "value").text)
             for r in rows}
    assert set(shown) == set(LABELS)  # the names as typed, markup and all: text, not HTML
    for name, probability in want["probabilities"].items():
        assert shown[name] == pytest.approx(probability, abs=1e-3)
    widths = [float(r.find_element(By.CLASS_NAME, "bar").get_attribute("style").split("width:")[1].split("%")[0])
              for r in rows]
    assert widths == sorted(widths, reverse=True) and sum(widths) == pytest.approx(100, abs=0.5)
    assert not browser.find_elements(By.CSS_SELECTOR, "#bars b, #bars img, #adapter img")
    assert browser.title == "sktune serve"  # the onerror handler in a label never ran

    browser.find_element(By.ID, "text").clear()
    browser.find_element(By.ID, "text").send_keys(" ")
    browser.find_element(By.ID, "run").click()
    wait.until(lambda d: "400" in d.find_element(By.ID, "error").text)
    assert "empty" in browser.find_element(By.ID, "error").text
