//! The web UI in a real browser: headless Chromium driven over WebDriver
//! (chromedriver, fantoccini). Each page is checked with axe-core and
//! photographed at desktop and phone width for a reviewer (the pictures
//! go to `$ARTIFACTSTORE_SCREENSHOTS`, by default a folder under the build
//! directory; they are not committed).
//!
//! Needs `chromedriver` and `chromium` (Debian's packages) and axe-core's
//! `axe.min.js` (`ARTIFACTSTORE_AXE_JS`, npm's `axe-core`): `.ci/run`
//! installs them. Without them the test says so and passes, unless
//! `CI=true`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use artifactstore_core::token::Scope;
use fantoccini::{Client, ClientBuilder, Locator};

use super::*;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// Desktop and phone widths the pages are photographed at.
const WIDTHS: [(&str, u32, u32); 2] = [("desktop", 1280, 900), ("phone", 390, 844)];

/// chromedriver, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the browser test needs, or why it cannot run here.
struct Tools {
    chromedriver: PathBuf,
    chromium: PathBuf,
    axe: String,
}

fn tools() -> Result<Tools, String> {
    let chromedriver = std::env::var_os("ARTIFACTSTORE_CHROMEDRIVER")
        .map_or_else(|| PathBuf::from(CHROMEDRIVER), PathBuf::from);
    let chromium = std::env::var_os("ARTIFACTSTORE_CHROMIUM")
        .map_or_else(|| PathBuf::from(CHROMIUM), PathBuf::from);
    for tool in [&chromedriver, &chromium] {
        if !tool.exists() {
            return Err(format!(
                "{} is not installed (Debian's chromium and chromium-driver)",
                tool.display()
            ));
        }
    }
    let axe_path = std::env::var("ARTIFACTSTORE_AXE_JS")
        .map_err(|_| "ARTIFACTSTORE_AXE_JS does not name axe-core's axe.min.js".to_owned())?;
    let axe = std::fs::read_to_string(&axe_path).map_err(|e| format!("{axe_path}: {e}"))?;
    Ok(Tools {
        chromedriver,
        chromium,
        axe,
    })
}

fn start_driver(tools: &Tools) -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(&tools.chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let deadline = std::time::Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "chromedriver did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

async fn open_browser(driver: &Driver, tools: &Tools, downloads: &Path) -> Client {
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": tools.chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"],
            "prefs": {
                "download.default_directory": downloads,
                "download.prompt_for_download": false,
            },
        },
    });
    let Value::Object(capabilities) = capabilities else {
        unreachable!("an object")
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a browser session")
}

fn screenshots_dir() -> PathBuf {
    let dir = std::env::var_os("ARTIFACTSTORE_SCREENSHOTS").map_or_else(
        || PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots"),
        PathBuf::from,
    );
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs axe-core on the page: no serious or critical violation.
async fn check_accessibility(browser: &Client, axe: &str, page: &str) {
    browser.execute(axe, vec![]).await.expect("axe-core loads");
    let result = browser
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             axe.run(document, {resultTypes: ['violations']})\
               .then(r => done(r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')\
                 .map(v => v.id + ': ' + v.help + ' (' + v.nodes.map(n => n.target.join(' ')).join(', ') + ')')))\
               .catch(e => done(['axe failed: ' + e]));",
            vec![],
        )
        .await
        .expect("axe-core runs");
    let violations: Vec<String> = serde_json::from_value(result).unwrap();
    assert!(violations.is_empty(), "{page}: {violations:#?}");
}

/// axe-core, then a picture at each width.
async fn look_at(browser: &Client, tools: &Tools, page: &str) {
    check_accessibility(browser, &tools.axe, page).await;
    let dir = screenshots_dir();
    for (name, width, height) in WIDTHS {
        browser.set_window_size(width, height).await.unwrap();
        let png = browser.screenshot().await.unwrap();
        std::fs::write(dir.join(format!("{page}-{name}.png")), png).unwrap();
    }
    browser.set_window_size(1280, 900).await.unwrap();
}

/// Clicks the button labelled `label`.
async fn press(browser: &Client, label: &str) {
    browser
        .find(Locator::XPath(&format!(
            "//button[normalize-space()='{label}']"
        )))
        .await
        .unwrap_or_else(|e| panic!("no button {label:?}: {e}"))
        .click()
        .await
        .unwrap();
}

/// Types `text` into the field with id `id` (a file input takes a path).
async fn type_into(browser: &Client, id: &str, text: &str) {
    browser
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("no field #{id}: {e}"))
        .send_keys(text)
        .await
        .unwrap();
}

/// Waits until `check` holds, polling.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn the_ui_works_in_a_real_browser() {
    let tools = match tools() {
        Ok(tools) => tools,
        Err(reason) => {
            artifactstore_testkit::skip_or_fail("the browser test", &reason);
            return;
        }
    };
    artifactstore_testkit::run_on(artifactstore_testkit::Engine::Sqlite, async move {
        browse_act_and_follow(&tools).await;
        log_in_and_be_refused(&tools).await;
    });
}

/// Without auth: browse to a package, open a folder, download a file,
/// place and release a hold, see an event arrive live; a hostile name is
/// text.
async fn browse_act_and_follow(tools: &Tools) {
    let server = TestServer::start().await;
    let hostile = "<img src=x onerror=alert(1)>";
    let response = server
        .post_json(
            "/v1/packages",
            &json!({"name": hostile, "producer": "ci", "subject": "app", "retention_class": "standard", "metadata": {"note": "<script>alert(2)</script>"}}),
        )
        .await;
    let id = json_of(response).await["id"].as_str().unwrap().to_owned();
    server
        .put_file(&id, "reports/unit/junit.xml", b"<testsuite tests=\"3\"/>\n")
        .await;
    server
        .put_file(&id, "logs/build.log", b"compiling...\nok\n")
        .await;

    let driver = start_driver(tools);
    let downloads = tempfile::tempdir().unwrap();
    let browser = open_browser(&driver, tools, downloads.path()).await;

    // The list: the hostile name is a link whose text is the name.
    browser.goto(&server.url("/")).await.unwrap();
    assert_eq!(browser.current_url().await.unwrap().path(), "/ui/");
    look_at(&browser, tools, "packages").await;
    let link = browser
        .find(Locator::LinkText(hostile))
        .await
        .expect("the name as text");
    let alerts = browser
        .execute(
            "return document.querySelectorAll('img[src=x]').length",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(alerts, json!(0), "no markup was made of the name");
    link.click().await.unwrap();

    // The package: close and open a folder, then download a file.
    eventually("the package page", || async {
        browser.current_url().await.unwrap().path() == format!("/ui/packages/{id}")
    })
    .await;
    look_at(&browser, tools, "package").await;
    let source = browser.source().await.unwrap();
    assert!(source.contains("&lt;script&gt;alert(2)&lt;/script&gt;"));
    let folder = browser
        .find(Locator::XPath("//summary[normalize-space()='reports/']"))
        .await
        .unwrap();
    let file_link = browser.find(Locator::LinkText("junit.xml")).await.unwrap();
    folder.click().await.unwrap();
    assert!(
        !file_link.is_displayed().await.unwrap(),
        "a closed folder hides its files"
    );
    folder.click().await.unwrap();
    let unit = browser
        .find(Locator::XPath("//summary[normalize-space()='unit/']"))
        .await
        .unwrap();
    assert!(unit.is_displayed().await.unwrap());
    assert!(
        file_link.is_displayed().await.unwrap(),
        "an opened folder shows its files"
    );
    file_link.click().await.unwrap();
    let downloaded = downloads.path().join("junit.xml");
    eventually("the download", || async { downloaded.exists() }).await;
    assert_eq!(
        std::fs::read(&downloaded).unwrap(),
        b"<testsuite tests=\"3\"/>\n"
    );

    // A file uploaded from the browser (tus-js-client, in 64 MiB PATCHes
    // through the resumable endpoint) lands in the folder asked for.
    let upload_dir = tempfile::tempdir().unwrap();
    let local = upload_dir.path().join("coverage.bin");
    let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&local, &content).unwrap();
    type_into(&browser, "upload-files", local.to_str().unwrap()).await;
    type_into(&browser, "upload-folder", "reports/coverage").await;
    press(&browser, "Upload").await;
    eventually("the uploaded file recorded", || async {
        server
            .registry
            .list_files(id.parse().unwrap())
            .await
            .unwrap()
            .iter()
            .any(|file| file.relative_path == "reports/coverage/coverage.bin")
    })
    .await;
    let files = json_of(server.get(&format!("/v1/packages/{id}/files")).await).await;
    let uploaded = files["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|file| file["relative_path"] == "reports/coverage/coverage.bin")
        .unwrap()
        .clone();
    let bytes = server
        .get(&format!(
            "/v1/files/{}/content",
            uploaded["id"].as_str().unwrap()
        ))
        .await
        .bytes()
        .await
        .unwrap();
    assert!(
        bytes.as_ref() == content.as_slice(),
        "the uploaded bytes differ"
    );
    eventually("the page reloaded with the file", || async {
        browser.source().await.unwrap().contains("coverage.bin")
    })
    .await;

    // A hold placed and released through the forms.
    type_into(&browser, "hold-reason", "litigation 2026-17").await;
    press(&browser, "Place hold").await;
    let holds = browser
        .wait()
        .for_element(Locator::Css("ul.holds"))
        .await
        .unwrap();
    assert!(holds.text().await.unwrap().contains("litigation 2026-17"));
    look_at(&browser, tools, "package-held").await;
    let release_reason = browser
        .find(Locator::Css("input[id^='release-']"))
        .await
        .unwrap();
    release_reason.send_keys("case closed").await.unwrap();
    press(&browser, "Release hold").await;
    eventually("the hold released", || async {
        browser
            .source()
            .await
            .unwrap()
            .contains("v1.retention.hold_released")
    })
    .await;
    let (retention, _) = server
        .registry
        .retention_explained(id.parse().unwrap())
        .await
        .unwrap();
    assert!(retention.active_holds.is_empty());

    // The events page follows the log: a package made by another client
    // appears without a reload.
    browser.goto(&server.url("/ui/events")).await.unwrap();
    look_at(&browser, tools, "events").await;
    eventually("the live stream open", || async {
        browser
            .find(Locator::Id("live-status"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .starts_with("Live")
    })
    .await;
    let pushed = server
        .create_package("nightly", "standard", Value::Null)
        .await;
    let pushed_id = pushed["id"].as_str().unwrap().to_owned();
    eventually("the new event on the page", || async {
        browser
            .find(Locator::Css("#events tbody tr.new"))
            .await
            .is_ok()
            && browser.source().await.unwrap().contains(&pushed_id)
    })
    .await;

    browser.goto(&server.url("/ui/system")).await.unwrap();
    look_at(&browser, tools, "system").await;
    browser.close().await.unwrap();
}

/// With auth: the login form, pages for the session, and an action the
/// token may not do refused beside its field.
async fn log_in_and_be_refused(tools: &Tools) {
    let server = TestServer::start_with(ServerOptions {
        auth_required: true,
        ..ServerOptions::default()
    })
    .await;
    let (_, admin) = server
        .registry
        .create_token("root", Scope::Admin, vec![], None, "setup")
        .await
        .unwrap();
    // May write, but only packages of producer "docs".
    let (_, docs_writer) = server
        .registry
        .create_token("docs-bot", Scope::Write, vec!["docs".into()], None, "setup")
        .await
        .unwrap();
    let response = server
        .send(
            server
                .client
                .post(server.url("/v1/packages"))
                .bearer_auth(&admin)
                .json(&json!({"name": "release-7", "producer": "ci", "subject": "app", "retention_class": "standard"})),
        )
        .await;
    let id = json_of(response).await["id"].as_str().unwrap().to_owned();

    let driver = start_driver(tools);
    let downloads = tempfile::tempdir().unwrap();
    let browser = open_browser(&driver, tools, downloads.path()).await;
    browser
        .goto(&server.url(&format!("/ui/packages/{id}")))
        .await
        .unwrap();
    assert_eq!(browser.current_url().await.unwrap().path(), "/ui/login");
    look_at(&browser, tools, "login").await;
    type_into(&browser, "token", &docs_writer).await;
    press(&browser, "Log in").await;
    eventually("back on the package", || async {
        browser.current_url().await.unwrap().path() == format!("/ui/packages/{id}")
    })
    .await;
    let cookie_seen_by_script = browser
        .execute("return document.cookie", vec![])
        .await
        .unwrap();
    assert_eq!(
        cookie_seen_by_script,
        json!(""),
        "the token is out of scripts' reach"
    );
    assert!(browser.source().await.unwrap().contains("docs-bot"));
    type_into(&browser, "hold-reason", "not mine").await;
    press(&browser, "Place hold").await;
    let refusal = browser
        .wait()
        .for_element(Locator::Id("hold-error"))
        .await
        .unwrap();
    assert!(
        refusal
            .text()
            .await
            .unwrap()
            .contains("may not write packages of producer"),
        "{}",
        refusal.text().await.unwrap()
    );
    look_at(&browser, tools, "package-refused").await;
    let (retention, _) = server
        .registry
        .retention_explained(id.parse().unwrap())
        .await
        .unwrap();
    assert!(retention.active_holds.is_empty());
    browser.close().await.unwrap();
}
