//! The image store: loads of OCI layouts and `docker save` tarballs, pulls from a real
//! registry (Debian's `docker-registry`) and from a token-authenticated fake one on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use berth_runtime::{ContainerSpec, Error, ImageStore, Runtime};
use common::{TestImage, busybox_image, digest, id, log_text, root_or_skip};
use serde_json::json;

/// Runs the image's default command under every backend; its output (the same for each).
fn run_echo(store: &ImageStore, dir: &Path, reference: &str) -> Vec<String> {
    let mut outputs = Vec::new();
    for backend in common::BACKENDS {
        let rt = Runtime::new(common::runtime_config(&dir.join("containers"), backend)).unwrap();
        let image = store.resolve(reference).unwrap();
        let cid = id(&format!("img-{backend}"));
        let rootfs = rt.prepare_rootfs(&cid, store, &image).unwrap();
        let spec = ContainerSpec::from_image(&cid, rootfs, &image.config).unwrap();
        let h = rt.create_and_start(&spec).unwrap();
        let exit = rt.wait(&cid, common::WAIT).unwrap();
        let out = log_text(&h.stdout_path);
        rt.remove(&cid).unwrap();
        assert_eq!(exit.exit_code, 0, "{backend}");
        outputs.push(out);
    }
    assert_eq!(outputs[0], outputs[1], "runc and libcontainer disagree");
    outputs.swap_remove(0)
}

#[test]
fn docker_save_tarball_loads_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("saved.tar");
    common::write_docker_save(&tar, "saved:1");
    let store = ImageStore::open(dir.path().join("images")).unwrap();
    assert_eq!(store.load(&tar).unwrap(), ["docker.io/library/saved:1"]);
    let image = store.resolve("saved:1").unwrap();
    assert_eq!(
        image.config.cmd.as_deref().unwrap(),
        ["sh", "-c", "echo image default"]
    );
    assert_eq!(
        image.config.env.as_deref().unwrap(),
        ["PATH=/bin", "FROM_IMAGE=1"]
    );
    assert_eq!(image.diff_ids, [digest(&common::busybox_layer())]);
    assert!(
        store
            .list()
            .unwrap()
            .contains_key("docker.io/library/saved:1")
    );
    if root_or_skip("docker_save_tarball_loads_and_runs (running part)") {
        assert_eq!(
            run_echo(&store, dir.path(), "docker.io/library/saved:1"),
            ["image default"]
        );
    }
}

#[test]
fn oci_layout_tarball_loads_and_layers_are_shared() {
    let dir = tempfile::tempdir().unwrap();
    let layout = common::write_oci_layout(&dir.path().join("layout"), "localhost:5000/app:1");
    let tar_path = dir.path().join("layout.tar");
    let mut b = tar::Builder::new(fs::File::create(&tar_path).unwrap());
    b.append_dir_all(".", &layout).unwrap();
    b.finish().unwrap();
    let store = ImageStore::open(dir.path().join("images")).unwrap();
    assert_eq!(store.load(&tar_path).unwrap(), ["localhost:5000/app:1"]);
    let image = store.resolve("localhost:5000/app:1").unwrap();
    assert_eq!(image.manifest_digest, digest(&busybox_image().manifest));
    // By digest too.
    assert_eq!(
        store.resolve(&image.manifest_digest).unwrap().config_digest,
        image.config_digest
    );
    if !root_or_skip("oci_layout_tarball_loads_and_layers_are_shared (unpacking part)") {
        return;
    }
    // The same layer under another name is unpacked once.
    common::write_docker_save(&dir.path().join("s.tar"), "other:2");
    store.load(&dir.path().join("s.tar")).unwrap();
    let a = store.layer_dirs(&image).unwrap();
    let b = store
        .layer_dirs(&store.resolve("other:2").unwrap())
        .unwrap();
    assert_eq!(a, b);
    assert!(a[0].join("bin/busybox").exists());
    assert_eq!(
        fs::read_dir(dir.path().join("images/layers"))
            .unwrap()
            .count(),
        1
    );
}

#[test]
fn a_missing_image_is_a_cannot_pull_container_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let err = store.resolve("nosuch:1").unwrap_err();
    assert!(matches!(err, Error::CannotPull { .. }));
    assert!(
        err.to_string().starts_with("CannotPullContainerError: "),
        "{err}"
    );
    assert!(
        err.to_string().contains("docker.io/library/nosuch:1"),
        "{err}"
    );
    // Nothing listens on this port.
    let port = free_port();
    let err = store.pull(&format!("127.0.0.1:{port}/app:1")).unwrap_err();
    assert!(
        err.to_string().starts_with("CannotPullContainerError: "),
        "{err}"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_docker_registry() -> Option<Registry> {
    let bin = Path::new("/usr/bin/docker-registry");
    if !bin.exists() {
        if std::env::var_os("CI").is_some() {
            panic!("docker-registry is missing: apt-get install -y docker-registry");
        }
        eprintln!(
            "skipping: /usr/bin/docker-registry is missing (apt-get install -y docker-registry)"
        );
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("config.yml");
    fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let child = Command::new(bin)
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let reg = Registry {
        child,
        port,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "docker-registry did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(reg)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// Pushes a blob with the distribution API (monolithic upload).
fn push_blob(base: &str, repo: &str, data: &[u8]) {
    let a = agent();
    let resp = a
        .post(&format!("{base}/v2/{repo}/blobs/uploads/"))
        .send_empty()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let loc = resp
        .headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let loc = if loc.starts_with("http") {
        loc
    } else {
        format!("{base}{loc}")
    };
    let sep = if loc.contains('?') { '&' } else { '?' };
    let resp = a
        .put(&format!("{loc}{sep}digest={}", digest(data)))
        .header("Content-Type", "application/octet-stream")
        .send(data)
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201, "{:?}", resp);
}

fn push_manifest(base: &str, repo: &str, reference: &str, media_type: &str, data: &[u8]) {
    let resp = agent()
        .put(&format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("Content-Type", media_type)
        .send(data)
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201, "{resp:?}");
}

fn index_for(img: &TestImage) -> Vec<u8> {
    let m = json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest(&img.manifest), "size": img.manifest.len()});
    let mut arm = m.clone();
    arm["platform"] = json!({"architecture": "arm64", "os": "linux"});
    let mut amd = m;
    amd["platform"] = json!({"architecture": "amd64", "os": "linux"});
    serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [arm, amd]}))
        .unwrap()
}

#[test]
fn pull_from_a_loopback_docker_registry() {
    let Some(reg) = start_docker_registry() else {
        return;
    };
    let base = format!("http://127.0.0.1:{}", reg.port);
    let img = busybox_image();
    push_blob(&base, "team/app", &img.layer);
    push_blob(&base, "team/app", &img.config);
    push_manifest(
        &base,
        "team/app",
        "1",
        "application/vnd.oci.image.manifest.v1+json",
        &img.manifest,
    );
    push_manifest(
        &base,
        "team/app",
        "multi",
        "application/vnd.oci.image.index.v1+json",
        &index_for(&img),
    );

    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("images")).unwrap();
    let reference = format!("127.0.0.1:{}/team/app:1", reg.port);
    let image = store.pull(&reference).unwrap();
    assert_eq!(image.manifest_digest, digest(&img.manifest));
    assert_eq!(
        image.config.cmd.as_deref().unwrap(),
        ["sh", "-c", "echo image default"]
    );
    // The index resolves to the linux/amd64 manifest.
    let multi = store
        .pull(&format!("127.0.0.1:{}/team/app:multi", reg.port))
        .unwrap();
    assert_eq!(multi.manifest_digest, image.manifest_digest);
    // By digest.
    let by_digest = store
        .pull(&format!(
            "127.0.0.1:{}/team/app@{}",
            reg.port, image.manifest_digest
        ))
        .unwrap();
    assert_eq!(by_digest.config_digest, image.config_digest);
    assert!(store.resolve(&reference).is_ok());

    let err = store
        .pull(&format!("127.0.0.1:{}/team/app:nope", reg.port))
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("CannotPullContainerError: ") && msg.contains("not found"),
        "{msg}"
    );
    let err = store
        .pull(&format!("127.0.0.1:{}/team/nothing:1", reg.port))
        .unwrap_err();
    assert!(
        err.to_string().starts_with("CannotPullContainerError: "),
        "{err}"
    );

    if root_or_skip("pull_from_a_loopback_docker_registry (running part)") {
        assert_eq!(run_echo(&store, dir.path(), &reference), ["image default"]);
    }
}

/// A registry that wants a Bearer token (from its own /token endpoint) and can serve a
/// corrupted layer.
fn fake_registry(img: TestImage, corrupt_layer: bool) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let token_calls = Arc::new(AtomicUsize::new(0));
    let calls = token_calls.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push(line);
            }
            let Some(first) = head.first() else { continue };
            let path = first.split_whitespace().nth(1).unwrap_or("").to_string();
            let authed = head.iter().any(|h| {
                h.to_ascii_lowercase()
                    .starts_with("authorization: bearer s3cret")
            });
            let respond = |stream: &mut TcpStream, status: &str, headers: &str, body: &[u8]| {
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n",
                    body.len()
                );
                let _ = stream.write_all(body);
            };
            if path.starts_with("/token?") {
                assert!(
                    path.contains("scope=repository%3Asecure%2Fapp%3Apull")
                        || path.contains("scope=repository:secure/app:pull"),
                    "{path}"
                );
                calls.fetch_add(1, Ordering::SeqCst);
                respond(
                    &mut stream,
                    "200 OK",
                    "Content-Type: application/json\r\n",
                    br#"{"token":"s3cret"}"#,
                );
                continue;
            }
            if !authed {
                let challenge = format!(
                    "WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"fake\",scope=\"repository:secure/app:pull\"\r\n"
                );
                respond(&mut stream, "401 Unauthorized", &challenge, b"{}");
                continue;
            }
            let mut layer = img.layer.clone();
            if corrupt_layer {
                let n = layer.len();
                layer[n / 2] ^= 0xff;
            }
            let body: Option<(&str, Vec<u8>)> = if path == "/v2/secure/app/manifests/1" {
                Some((
                    "application/vnd.oci.image.manifest.v1+json",
                    img.manifest.clone(),
                ))
            } else if path == format!("/v2/secure/app/blobs/{}", digest(&img.config)) {
                Some(("application/octet-stream", img.config.clone()))
            } else if path == format!("/v2/secure/app/blobs/{}", digest(&img.layer)) {
                Some(("application/octet-stream", layer))
            } else {
                None
            };
            match body {
                Some((ct, b)) => respond(
                    &mut stream,
                    "200 OK",
                    &format!("Content-Type: {ct}\r\n"),
                    &b,
                ),
                None => respond(&mut stream, "404 Not Found", "", b"{}"),
            }
            let _ = reader.read(&mut [0u8; 0]);
        }
    });
    (port, token_calls)
}

#[test]
fn pull_with_bearer_token_auth_and_digest_verification() {
    let (port, token_calls) = fake_registry(busybox_image(), false);
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("images")).unwrap();
    let image = store
        .pull(&format!("127.0.0.1:{port}/secure/app:1"))
        .unwrap();
    assert_eq!(image.manifest_digest, digest(&busybox_image().manifest));
    assert!(token_calls.load(Ordering::SeqCst) >= 1);

    let (port, _) = fake_registry(busybox_image(), true);
    let store = ImageStore::open(dir.path().join("images2")).unwrap();
    let err = store
        .pull(&format!("127.0.0.1:{port}/secure/app:1"))
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("CannotPullContainerError: ") && msg.contains("digest mismatch"),
        "{msg}"
    );
    assert!(
        store
            .resolve(&format!("127.0.0.1:{port}/secure/app:1"))
            .is_err()
    );
}

#[test]
fn the_scripted_test_image_loads_and_runs() {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/images/make-busybox-image.sh");
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("bb.tar");
    let status = Command::new("sh")
        .arg(&script)
        .arg(&tar)
        .arg("scripted:1")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let store = ImageStore::open(dir.path().join("images")).unwrap();
    assert_eq!(store.load(&tar).unwrap(), ["docker.io/library/scripted:1"]);
    if !root_or_skip("the_scripted_test_image_loads_and_runs (running part)") {
        return;
    }
    for backend in common::BACKENDS {
        let rt = Runtime::new(common::runtime_config(
            &dir.path().join("containers"),
            backend,
        ))
        .unwrap();
        let image = store.resolve("scripted:1").unwrap();
        let cid = id("scripted");
        let rootfs = rt.prepare_rootfs(&cid, &store, &image).unwrap();
        let mut spec = ContainerSpec::from_image(&cid, rootfs, &image.config).unwrap();
        spec.args = vec!["sh".into(), "-c".into(), "id -un; ls /bin/busybox".into()];
        let h = rt.create_and_start(&spec).unwrap();
        assert_eq!(
            rt.wait(&cid, common::WAIT).unwrap().exit_code,
            0,
            "{backend}"
        );
        assert_eq!(
            log_text(&h.stdout_path),
            ["root", "/bin/busybox"],
            "{backend}"
        );
        rt.remove(&cid).unwrap();
    }
}
