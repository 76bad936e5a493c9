"""The dashboard of encore-serve in a real browser (headless Chromium driven by
chromedriver through WebDriver), on the bundled sample.

Every figure the test expects is read from the JSON API of the same server, or
from `encore-train audience`, never written down here. Screenshots of every
page go to a temporary directory, or to $ENCORE_SCREENSHOTS when set
(`ENCORE_SCREENSHOTS=docs/screenshots` refreshes the ones in the docs).

Chromium and chromedriver come from the system (Debian: `apt-get install
chromium chromium-driver`; scripts/test.sh installs them); without them the
test fails, it is not skipped. Selenium is told where both are, so it never
tries to download a driver.
"""

import gzip
import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample" / "online_retail.csv.gz"
CATALOG = REPO / "data" / "sample" / "online_retail_catalog.csv"
COLUMNS_SPEC = ("order_id=InvoiceNo,customer_id=CustomerID,item_id=StockCode,"
                "timestamp=InvoiceDate,quantity=Quantity,price=UnitPrice")
# Selenium must never try to download a driver or a browser.
os.environ.setdefault("SE_OFFLINE", "true")

READ_KEY = "dashboard-test-read-key"
WIDE = (1280, 800)
PHONE = (390, 844)
PAGES = ("overview", "customer", "audiences", "model")


def encore_train() -> pathlib.Path:
    """The encore-train binary: $ENCORE_TRAIN, else the cargo target directory's."""
    if "ENCORE_TRAIN" in os.environ:
        return pathlib.Path(os.environ["ENCORE_TRAIN"])
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    for profile in ("debug", "release"):
        if (target / profile / "encore-train").exists():
            return target / profile / "encore-train"
    pytest.fail(f"no encore-train under {target}: cargo build -p encore-training -p encore-serving, "
                "or set ENCORE_TRAIN and ENCORE_SERVE")


def encore_serve() -> pathlib.Path:
    """The encore-serve binary: $ENCORE_SERVE, else beside encore-train."""
    if "ENCORE_SERVE" in os.environ:
        return pathlib.Path(os.environ["ENCORE_SERVE"])
    return encore_train().with_name("encore-serve")


def _webdriver():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("selenium is not installed: pip install selenium (scripts/test.sh does)")
    browser = next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p),
        None,
    )
    driver_path = shutil.which("chromedriver")
    if browser is None or driver_path is None:
        pytest.fail(
            "the browser test needs Chromium and chromedriver on PATH "
            "(Debian: apt-get install chromium chromium-driver; scripts/test.sh installs them)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={WIDE[0]},{WIDE[1]}", "--hide-scrollbars"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver_path), options=options)


class Server:
    """encore-serve on a free loopback port (it prints the address it got)."""

    def __init__(self, *args: str, examples: bool = True):
        self.proc = subprocess.Popen(
            [str(encore_serve()), "--bind", "127.0.0.1:0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        self.lines = []
        deadline = time.time() + 120
        self.base = None
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            m = re.match(r"Dashboard: (http://\S+)/$", line.strip())
            if m:
                self.base = m.group(1)
            # With a model, the example requests follow the address.
            if self.base and (not examples or "/profile" in line):
                break
        if self.base is None:
            self.stop()
            pytest.fail("encore-serve did not print its dashboard address: " + "".join(self.lines))

    def example_customer(self) -> str:
        """An active customer: the one with the highest CLV (the first of the
        audience of active customers)."""
        status, _, body = self.get("/v1/audiences/reactivation?stage=active&limit=1")
        assert status == 200, body
        return json.loads(body.splitlines()[0])["customer_id"]

    def get(self, path: str, key: str = None):
        """(status, headers, body bytes) of a GET to the API."""
        req = urllib.request.Request(self.base + path)
        if key:
            req.add_header("Authorization", "Bearer " + key)
        try:
            with urllib.request.urlopen(req, timeout=60) as res:
                return res.status, res.headers, res.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def post(self, path: str, body) -> tuple:
        """(status, parsed JSON) of a JSON POST to the API."""
        req = urllib.request.Request(self.base + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=60) as res:
                return res.status, json.loads(res.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def json(self, path: str, key: str = None):
        status, _, body = self.get(path, key)
        return status, json.loads(body)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def fit(*args: str):
    run = subprocess.run([str(encore_train()), "fit", "--columns", COLUMNS_SPEC,
                          "--catalog", str(CATALOG), *args],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> pathlib.Path:
    """A model store holding two versions of the sample, with a small ALS (as
    the other tests): the first trained on the purchases before November
    2011, the second on the whole sample and promoted by the gate, which
    scores it against the first on the purchases since."""
    root = tmp_path_factory.mktemp("dashboard")
    config = root / "config.toml"
    config.write_text("[als]\nfactors = 16\niterations = 4\n")
    early = root / "before-2011-11.csv"
    with gzip.open(SAMPLE, "rt", newline="") as src, open(early, "w", newline="") as dst:
        for n, line in enumerate(src):
            # InvoiceDate is the 5th column: YYYY-MM-DD HH:MM:SS.
            if n == 0 or line.split(",")[4] < "2011-11":
                dst.write(line)
    store = root / "store"
    fit("--input", str(early), "--config", str(config), "--store", str(store), "--no-eval")
    fit("--input", str(SAMPLE), "--config", str(config), "--store", str(store))
    assert len((store / "HISTORY").read_text().splitlines()) == 2, "the gate refused the second version"
    return store


@pytest.fixture(scope="module")
def trained(store) -> pathlib.Path:
    """The current version's directory."""
    # CURRENT is "<version> sha256:<digest of its manifest>".
    return store / "versions" / (store / "CURRENT").read_text().split()[0]


@pytest.fixture(scope="module")
def server(store):
    s = Server("--store", str(store))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def keyed_server(trained, tmp_path_factory):
    keys = tmp_path_factory.mktemp("keys") / "keys.toml"
    digest = hashlib.sha256(READ_KEY.encode()).hexdigest()
    keys.write_text(f'[[keys]]\nname = "marketing"\nrole = "read"\nsha256 = "{digest}"\n')
    s = Server("--model", str(trained), "--api-keys", str(keys))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def downloads(tmp_path_factory):
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def driver(downloads):
    d = _webdriver()
    d.execute_cdp_cmd("Browser.setDownloadBehavior",
                      {"behavior": "allow", "downloadPath": str(downloads)})
    yield d
    d.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    target = os.environ.get("ENCORE_SCREENSHOTS")
    if target:
        path = pathlib.Path(target)
        if not path.is_absolute():
            path = REPO / path
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("screenshots")


# ------------------------------------------------------------------ helpers

def wait_for(driver, condition, what, timeout=30.0):
    end = time.time() + timeout
    while time.time() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; page: {driver.page_source[:3000]}")


def css(driver, selector):
    from selenium.webdriver.common.by import By
    return driver.find_elements(By.CSS_SELECTOR, selector)


def open_page(driver, base, route, ready=True):
    """Loads the dashboard afresh at #/route and waits for the page to be drawn."""
    driver.get("about:blank")
    driver.get(f"{base}/#/{route}")
    page = route.split("/")[0]
    if ready:
        wait_for(driver, lambda: css(driver, f'.page[data-page="{page}"][data-ready="true"]'),
                 f"page {route}")


def severe_logs(driver, allow_http_errors=False):
    entries = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    if allow_http_errors:
        # The browser reports every 4xx answer to fetch as a console error.
        entries = [e for e in entries if "the server responded with a status of" not in e["message"]]
    return entries


def marks(driver, chart):
    return len(css(driver, f"#{chart} svg .mark"))


def table_rows(driver, chart):
    return len(css(driver, f"#{chart} table tbody tr"))


def table_cells(driver, chart):
    """The body cells of the table behind a chart (shown or folded), row by row."""
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map("
        " r => [...r.children].map(c => c.textContent))", f"#{chart} table tbody tr")


def no_horizontal_overflow(driver):
    return driver.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.clientWidth,"
        " document.body.scrollWidth]")


def screenshot(driver, shots, name):
    """The whole page: the window is made as tall as the page for the shot."""
    size = driver.get_window_size()
    driver.execute_script("window.scrollTo(0, 0)")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(size["width"], max(height + 20, 300))
    time.sleep(0.2)
    driver.save_screenshot(str(shots / f"{name}.png"))
    driver.set_window_size(size["width"], size["height"])


def overlapping_labels(driver):
    """Pairs of axis labels on one line of a chart whose boxes overlap."""
    return driver.execute_script("""
        const clashes = [];
        for (const plot of document.querySelectorAll('svg.plot')) {
          const rows = new Map();
          for (const t of plot.querySelectorAll('text.axis')) {
            if (!t.textContent) continue;
            const key = t.getAttribute('y');
            if (!rows.has(key)) rows.set(key, []);
            rows.get(key).push(t.getBBox());
          }
          for (const boxes of rows.values()) {
            boxes.sort((a, b) => a.x - b.x);
            for (let i = 1; i < boxes.length; i++) {
              if (boxes[i - 1].x + boxes[i - 1].width > boxes[i].x + 0.5) {
                clashes.push([plot.closest('figure') ? plot.closest('figure').id : '', i]);
              }
            }
          }
        }
        return clashes;
    """)


def field(driver, name):
    (node,) = css(driver, f'[data-field="{name}"]')
    return node.get_attribute("data-value"), node.text


# ------------------------------------------------------------------ tests

def test_every_page_loads_without_console_errors_and_fits_both_widths(driver, server, shots):
    customer = server.example_customer()
    for size, tag in ((WIDE, "wide"), (PHONE, "phone")):
        for page in PAGES:
            driver.set_window_size(*size)
            route = f"customer/{urllib.parse.quote(customer)}" if page == "customer" else page
            open_page(driver, server.base, route)
            assert css(driver, "main .error") == [], css(driver, "main .error")[0].text
            assert severe_logs(driver) == [], f"{page} at {size}"
            scroll, client, body = no_horizontal_overflow(driver)
            assert scroll <= client and body <= client, f"{page} overflows at {size}: {scroll} > {client}"
            screenshot(driver, shots, f"{page}-{tag}")
            assert overlapping_labels(driver) == [], f"{page} at {size}"
    driver.set_window_size(*WIDE)


def test_overview_loads_within_a_second(driver, server):
    open_page(driver, server.base, "overview")
    ms = float(css(driver, ".page")[0].get_attribute("data-ms"))
    assert 0 < ms < 1000, f"overview drawn after {ms} ms"


def test_overview_charts_have_one_mark_per_figure(driver, server):
    _, kpis = server.json("/v1/kpis")
    open_page(driver, server.base, "overview")
    assert marks(driver, "chart-monthly") == 2 * len(kpis["monthly"]) > 0
    assert table_rows(driver, "chart-monthly") == len(kpis["monthly"])
    cells = sum(len(c["retention"]) for c in kpis["cohorts"])
    assert marks(driver, "chart-cohorts") == cells > 0
    assert table_rows(driver, "chart-cohorts") == len(kpis["cohorts"])
    assert marks(driver, "chart-stages") == len(kpis["stage_counts"]) > 0
    assert marks(driver, "chart-segments") == len(kpis["segment_spend"]) > 0
    assert marks(driver, "chart-clv") == len(kpis["clv_distribution"]["bins"]) > 0
    # The text labels carry the API's figures.
    stages = css(driver, "#chart-stages svg")[0].text
    for stage, count in kpis["stage_counts"].items():
        assert f"{count:,}" in stages, (stage, count, stages)
    segments = table_cells(driver, "chart-segments")
    assert [[r[1].replace(",", ""), r[2].replace(",", "")] for r in segments] == [
        [str(s["customers"]), f"{s['total_spend']:.2f}"] for s in kpis["segment_spend"]]
    clv = table_cells(driver, "chart-clv")
    assert [int(r[1].replace(",", "")) for r in clv] == [
        b["customers"] for b in kpis["clv_distribution"]["bins"]]
    monthly = table_cells(driver, "chart-monthly")
    assert [r[0] for r in monthly] == [m["period"] for m in kpis["monthly"]]
    for row, m in zip(monthly, kpis["monthly"]):
        assert _close(row[3], m["user_repurchase_rate"] * 100, 1), (row, m)
        assert _close(row[6], m["order_repurchase_rate"] * 100, 1), (row, m)
    # The data window of the model.
    _, model = server.json("/v1/model")
    assert field(driver, "model_version")[0] == model["model_version"]
    assert field(driver, "last_purchase")[0] == model["data"]["last_purchase"]


def test_model_page_shows_the_holdout_and_the_history(driver, server):
    _, model = server.json("/v1/model")
    open_page(driver, server.base, "model")
    assert marks(driver, "chart-holdout") == len(model["metrics"]["models"]) > 0
    rows = table_cells(driver, "chart-holdout")
    assert [r[0] for r in rows] == [m["model"] for m in model["metrics"]["models"]]
    for row, m in zip(rows, model["metrics"]["models"]):
        assert row[1] == f"{m['metrics']['recall@10']:.4f}", m["model"]
    assert field(driver, "last_reload_error")[1] == "none"
    _, history = server.json("/v1/model/history")
    rows = driver.execute_script(
        "return [...document.querySelectorAll('#promotions tbody tr')].map("
        " r => [...r.children].map(c => c.textContent))")
    assert len(rows) == len(history["promotions"]) == 2
    promoted, first = history["promotions"]
    assert rows[0][1] == promoted["version"] + " (current)" and rows[0][2] == "passed"
    assert rows[0][3] == first["version"] == promoted["gate"]["previous_version"]
    for l in promoted["gate"]["lists"]:
        assert f"{l['list']} {l['metric']}: {l['candidate']:.4f} / {l['previous']:.4f}" in rows[0][4]
    assert first["gate"] is None and rows[1][2].startswith("no gate")
    assert "No experiment is running." in css(driver, "main")[0].text


def _close(text: str, value: float, places: int) -> bool:
    return abs(float(text.rstrip("%").replace(",", "")) - value) <= 0.5 * 10 ** -places + 1e-9


def test_customer_lookup_shows_the_apis_numbers(driver, server, shots):
    customer = server.example_customer()
    enc = urllib.parse.quote(customer, safe="")
    _, profile = server.json(f"/v1/customers/{enc}/profile")
    _, orders = server.json(f"/v1/customers/{enc}/orders?limit=1000")
    _, nxt = server.json(f"/v1/customers/{enc}/next-purchase?k=10")
    _, again = server.json(f"/v1/customers/{enc}/buy-again?k=20")
    _, for_you = server.json(f"/v1/customers/{enc}/recommendations?k=10&include_purchased=true")
    open_page(driver, server.base, "customer")
    box = css(driver, "#customer-id")[0]
    box.send_keys(customer)
    css(driver, "#customer-form button")[0].click()
    wait_for(driver, lambda: css(driver, '[data-field="clv"]'), "the profile")
    for name in ("segment", "lifecycle_stage", "as_of"):
        assert field(driver, name)[0] == str(profile[name]), name
    for name, shown in (("churn_risk", "pct"), ("p_alive", "pct"), ("clv", "money"),
                        ("total_spend", "money"), ("orders", "int")):
        raw, text = field(driver, name)
        value = profile[name]
        if value is None:
            assert raw == "" and text == "–", name
            continue
        assert float(raw) == pytest.approx(value, rel=1e-12, abs=1e-12), name
        if shown == "pct":
            assert _close(text, value * 100, 1), (name, text, value)
        elif shown == "money":
            assert _close(text, value, 2), (name, text, value)
        else:
            assert int(text.replace(",", "")) == value
    raw, _ = field(driver, "predicted_next_purchase_date")
    assert raw == (nxt["predicted_next_purchase_date"] or "")
    raw, text = field(driver, "buy_within_30d_probability")
    if nxt["buy_within_30d_probability"] is not None:
        assert _close(text, nxt["buy_within_30d_probability"] * 100, 1)
    ids = lambda sel: [b.get_attribute("data-item") for b in css(driver, sel)]
    assert ids("#for-you button.item") == [x["item_id"] for x in for_you["items"]]
    assert ids("#buy-again button.item") == [x["item_id"] for x in again["items"]]
    assert ids("#next-items button.item") == [x["item_id"] for x in nxt["recommended_items"]]
    # The top row: one mark per order the API answers (every order of the
    # customer, which has more than two), then the predicted next purchase.
    assert orders["total"] == profile["orders"] > 2 and not orders["truncated"]
    assert len(css(driver, "#chart-timeline svg .mark.order")) == len(orders["orders"])
    expected = len(orders["orders"]) + (1 if nxt["predicted_next_purchase_date"] else 0) \
        + 2 * len(again["items"])
    assert marks(driver, "chart-timeline") == expected
    titles = driver.execute_script(
        "return [...document.querySelectorAll('#chart-timeline svg .mark.order title')]"
        ".map(t => t.textContent)")
    # Drawn oldest first; each names its order's date and lines.
    for title, order in zip(titles, reversed(orders["orders"])):
        assert title.startswith(f"order {order['date']}: {order['lines']} line"), (title, order)
    rows = driver.execute_script(
        "return [...document.querySelectorAll('#orders-table tbody tr')]"
        ".map(r => [...r.children].map(c => c.textContent))")
    assert [r[0] for r in rows] == [o["date"] for o in orders["orders"]]
    for row, order in zip(rows, orders["orders"]):
        assert int(row[1].replace(",", "")) == order["lines"]
        assert _close(row[2], order["units"], 0 if float(order["units"]).is_integer() else 2)
        if order["value"] is None:
            assert row[3] == "–"
        else:
            assert _close(row[3], order["value"], 2), (row, order)
    assert len(css(driver, "#due-table tbody tr")) == len(again["items"])
    assert table_rows(driver, "chart-timeline") == len(orders["orders"]) + len(again["items"])
    # Similar items of a clicked item, with titles and categories.
    first = for_you["items"][0]["item_id"]
    _, similar = server.json(f"/v1/items/{urllib.parse.quote(first, safe='')}/similar?k=5")
    css(driver, "#for-you button.item")[0].click()
    wait_for(driver, lambda: css(driver, "#similar table tbody tr"), "the similar items")
    screenshot(driver, shots, "customer-wide")
    rows = [r.text for r in css(driver, "#similar table tbody tr")]
    assert len(rows) == len(similar["items"]) > 0
    for row, item in zip(rows, similar["items"]):
        assert item["item_id"] in row and (item.get("title") or "–") in row
        assert (item.get("category") or "–") in row
    assert severe_logs(driver) == []


def test_unknown_customer_shows_the_apis_message(driver, server):
    status, body = server.json("/v1/customers/no-such-customer-42/profile")
    assert status == 404
    open_page(driver, server.base, "customer/no-such-customer-42")
    (err,) = css(driver, "main .error .error-message")
    assert body["message"] in err.text and body["code"] in err.text
    assert severe_logs(driver, allow_http_errors=True) == []


def _wait_download(folder: pathlib.Path, name: str) -> bytes:
    path = folder / name
    end = time.time() + 30
    while time.time() < end:
        if path.exists() and not list(folder.glob("*.crdownload")):
            return path.read_bytes()
        time.sleep(0.1)
    raise AssertionError(f"no download {name} in {folder}: {list(folder.iterdir())}")


def test_audience_download_is_byte_identical_to_the_cli(driver, server, trained, downloads, shots):
    open_page(driver, server.base, "audiences")
    form = css(driver, "#audience-form")[0]
    for stage in ("new", "active", "dormant", "at_risk", "lost"):
        box = form.find_element("css selector", f'input[name=stage][value="{stage}"]')
        if box.is_selected() != (stage in ("at_risk", "lost")):
            box.click()
    css(driver, "#aud-k")[0].clear()
    css(driver, "#aud-k")[0].send_keys("3")
    css(driver, "#aud-limit")[0].send_keys("60")
    css(driver, "#aud-max_churn_risk")[0].send_keys("0.99")
    css(driver, "#audience-build")[0].click()
    wait_for(driver, lambda: css(driver, "#audience-size"), "the audience size")
    query = "stage=at_risk,lost&max_churn_risk=0.99&k=3&limit=60"
    _, headers, _ = server.get("/v1/audiences/reactivation?" + query)
    size = int(headers["x-encore-audience-size"])
    assert int(css(driver, "#audience-size")[0].text.replace(",", "")) == size > 0
    assert len(css(driver, "#audience-result tbody tr")) == min(20, size)
    screenshot(driver, shots, "audiences-wide")
    cli = ["audience", "--model", str(trained), "--stage", "at_risk,lost",
           "--max-churn-risk", "0.99", "--k", "3", "--limit", "60"]
    for fmt, name in (("csv", "audience.csv"), ("ndjson", "audience.ndjson")):
        for old in downloads.glob("audience*"):
            old.unlink()
        css(driver, f"#download-{fmt}")[0].click()
        got = _wait_download(downloads, name)
        want = subprocess.run([str(encore_train()), *cli, "--format", fmt],
                              capture_output=True, check=True).stdout
        assert got == want, f"{fmt}: the download differs from encore-train audience"
    assert severe_logs(driver) == []


def test_the_key_prompt(driver, keyed_server):
    status, body = keyed_server.json("/v1/kpis")
    assert status == 401
    open_page(driver, keyed_server.base, "overview")
    panel = css(driver, "#key-panel")[0]
    assert panel.is_displayed()
    assert body["message"] in panel.text
    # A wrong key: the API's message again, on the page.
    drawn = lambda: int(driver.execute_script(
        "const p = document.querySelector('.page[data-ready]'); return p ? p.dataset.render : 0"))
    before = drawn()
    css(driver, "#key-input")[0].send_keys("not-the-key")
    css(driver, "#key-form button[type=submit]")[0].click()
    wait_for(driver, lambda: drawn() > before, "the page drawn again with the wrong key")
    assert body["message"] in css(driver, "main .error")[0].text
    assert css(driver, "#key-panel")[0].is_displayed()
    # The right key: the figures.
    css(driver, "#key-input")[0].send_keys(READ_KEY)
    css(driver, "#key-form button[type=submit]")[0].click()
    wait_for(driver, lambda: css(driver, "#chart-monthly svg .mark"), "the charts with the key")
    _, kpis = keyed_server.json("/v1/kpis", key=READ_KEY)
    assert marks(driver, "chart-monthly") == 2 * len(kpis["monthly"])
    assert not css(driver, "#key-panel")[0].is_displayed()
    assert severe_logs(driver, allow_http_errors=True) == []
    # Forget it again for the other tests.
    driver.execute_script("sessionStorage.clear()")


def test_pages_are_keyboard_navigable(driver, server):
    """Tab reaches the skip link, then the page links; Enter follows one."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    open_page(driver, server.base, "overview")
    seen = []
    for _ in range(8):
        ActionChains(driver).send_keys(Keys.TAB).perform()
        active = driver.switch_to.active_element
        seen.append(active.get_attribute("href") or active.tag_name)
        if seen[-1].endswith("#/model"):
            active.send_keys(Keys.ENTER)
            break
    assert seen[0].endswith("#main"), seen
    wait_for(driver, lambda: css(driver, '.page[data-page="model"][data-ready="true"]'),
             f"the model page by keyboard (focus went {seen})")


def test_an_api_error_shows_the_apis_message(driver, server):
    status, body = server.json("/v1/audiences/reactivation?stage=dormant,at_risk&min_p_alive=2&k=5")
    assert status == 400
    open_page(driver, server.base, "audiences")
    css(driver, "#aud-min_p_alive")[0].send_keys("2")
    css(driver, "#audience-build")[0].click()
    wait_for(driver, lambda: css(driver, "#audience-result .error"), "the refusal")
    text = css(driver, "#audience-result .error")[0].text
    assert body["message"] in text and body["code"] in text, text
    assert severe_logs(driver, allow_http_errors=True) == []


def test_a_server_without_a_model_says_so(driver, tmp_path_factory):
    """A store whose first version is not published yet: every page says why
    it has no figures (the API's message), none is blank."""
    empty = tmp_path_factory.mktemp("no-model") / "store"
    (empty / "versions").mkdir(parents=True)
    s = Server("--store", str(empty), examples=False)
    try:
        status, body = s.json("/v1/model")
        assert status == 503 and body["code"] == "service_unavailable", body
        for route in ("overview", "model", "customer/c1"):
            open_page(driver, s.base, route)
            errors = css(driver, "main .error .error-message")
            assert errors, f"page {route} shows no message"
            assert body["message"] in errors[0].text, errors[0].text
        assert severe_logs(driver, allow_http_errors=True) == []
    finally:
        s.stop()


EXPERIMENTS = """[[experiment]]
name = "home"
control = "als"
[[experiment.variant]]
name = "als"
share = 0.5
strategy = { list = "als", k = 5 }
[[experiment.variant]]
name = "repeat"
share = 0.5
strategy = { list = "for_you", k = 5, include_purchased = true }
"""


def test_model_page_shows_a_running_experiments_report(driver, trained, tmp_path_factory):
    """Customers served under an experiment (the server logs their exposures),
    some of whom buy: the Model page shows the report the API computes, and the
    API's report is the one encore-train experiment-report reads from the log."""
    root = tmp_path_factory.mktemp("experiment")
    config = root / "experiments.toml"
    config.write_text(EXPERIMENTS)
    events = root / "events"
    s = Server("--model", str(trained), "--events", str(events), "--experiments", str(config))
    try:
        status, body = s.json("/v1/admin/experiments/home/report")
        assert status == 404 and body["code"] == "no_exposures", body
        status, body = s.json("/v1/admin/experiments/nope/report")
        assert status == 404 and body["code"] == "experiment_not_found", body
        status, _, audience = s.get("/v1/audiences/reactivation?stage=active,dormant&limit=120&k=1")
        assert status == 200
        ids = [json.loads(line)["customer_id"] for line in audience.splitlines()]
        assert len(ids) == 120
        for c in ids:
            status, _, _ = s.get(f"/v1/customers/{urllib.parse.quote(c)}/recommendations?k=5")
            assert status == 200
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        buys = [{"id": f"buy-{c}", "type": "purchase", "time": now, "order_id": f"o-{c}",
                 "customer": c, "item": "85123A", "quantity": 1, "price": 2.55}
                for c in ids[::3]]
        status, body = s.post("/v1/events", {"events": buys})
        assert status == 200 and body["accepted"] == len(buys), body
        # Exposures are written by the event writer without the request waiting.
        def complete():
            status, r = s.json("/v1/admin/experiments/home/report")
            return r if status == 200 and r["customers"] == len(ids) else None
        report = wait_for(driver, complete, "every exposure in the report")
        assert sum(v["converted"] for v in report["variants"]) == len(buys)
        cli = subprocess.run([str(encore_train()), "experiment-report", "--events", str(events),
                              "--experiment", "home", "--experiments", str(config), "--format", "json"],
                             capture_output=True, text=True, check=False)
        assert cli.returncode == 0, cli.stderr
        assert json.loads(cli.stdout) == report

        open_page(driver, s.base, "model")
        rows = driver.execute_script(
            "return [...document.querySelectorAll('#exp-report-home table')].map(t =>"
            " [...t.querySelectorAll('tbody tr')].map(r => [...r.children].map(c => c.textContent)))")
        variants, comparisons = rows
        assert [r[0] for r in variants] == [v["name"] for v in report["variants"]] == ["als", "repeat"]
        for row, v in zip(variants, report["variants"]):
            assert row[1] == f"{v['customers']:,}"
            assert row[2].startswith(f"{v['conversion']['value'] * 100:.1f}%"), row
        (c,) = report["comparisons"]
        assert comparisons[0][0] == "repeat"
        assert comparisons[0][1].startswith(f"{c['conversion']['difference'] * 100:+.1f} pp"), comparisons
        assert severe_logs(driver, allow_http_errors=True) == []
    finally:
        s.stop()
