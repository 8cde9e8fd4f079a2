//! Real containers (runc, namespaces, cgroups, overlayfs) from the busybox-static test image.
//! They need root; without it each test says why it skips.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_runtime::{Backend, ContainerState, Error, Mount, Runtime};
use common::{BACKENDS, Env, WAIT, id, log_text, root_or_skip};

for_each_backend!(
    exit_code_and_output_are_captured,
    image_defaults_env_args_cwd_and_user_are_honoured,
    readonly_root_bind_mounts_and_ulimits,
    a_missing_executable_fails_the_start,
    stop_sends_sigterm_then_sigkill_after_the_timeout,
    exceeding_the_memory_limit_is_reported_as_oom_killed,
    stats_read_the_cgroup,
    the_container_survives_its_starter_and_is_found_again,
    host_network_and_an_existing_network_namespace,
    task_level_limits_bound_the_containers_under_them,
    exec_runs_in_the_container_as_its_user,
);

fn exit_code_and_output_are_captured(backend: Backend) {
    if !root_or_skip("exit_code_and_output_are_captured") {
        return;
    }
    let env = Env::new(backend);
    let spec = env.spec(
        &id("exit"),
        &[
            "sh",
            "-c",
            "echo out1; echo err1 >&2; echo out2; printf partial; exit 3",
        ],
    );
    let t = Instant::now();
    let h = env.run(&spec);
    eprintln!("create_and_start took {:?}", t.elapsed());
    let exit = env.rt.wait(&h.id, WAIT).unwrap();
    assert_eq!(exit.exit_code, 3);
    assert_eq!(exit.signal, None);
    assert!(!exit.oom_killed);
    assert!(exit.finished_at_ms >= exit.started_at_ms);
    assert_eq!(log_text(&h.stdout_path), ["out1", "out2", "partial"]);
    assert_eq!(log_text(&h.stderr_path), ["err1"]);
    assert!(matches!(env.rt.state(&h.id).unwrap(), ContainerState::Exited(e) if e.exit_code == 3));
    env.rt.remove(&h.id).unwrap();
    assert!(matches!(env.rt.state(&h.id), Err(Error::NotFound(_))));
    assert!(!h.state_dir.exists());
}

fn image_defaults_env_args_cwd_and_user_are_honoured(backend: Backend) {
    if !root_or_skip("image_defaults_env_args_cwd_and_user_are_honoured") {
        return;
    }
    let env = Env::new(backend);
    // The image's own Cmd.
    let spec = env.spec(&id("default"), &[]);
    let h = env.run(&spec);
    assert_eq!(env.rt.wait(&h.id, WAIT).unwrap().exit_code, 0);
    assert_eq!(log_text(&h.stdout_path), ["image default"]);

    let mut spec = env.spec(
        &id("envargs"),
        &["sh", "-c", "echo \"$FOO|$FROM_IMAGE|$HOME|$#|$0\"; pwd; id -u; id -g; id -G; hostname; cat /etc/hostname", "zero"],
    );
    spec.env.push("FOO=bar baz".into());
    spec.working_dir = "/tmp".into();
    spec.user = "app".into();
    spec.hostname = "myhost".into();
    let h = env.run(&spec);
    assert_eq!(
        env.rt.wait(&h.id, WAIT).unwrap().exit_code,
        0,
        "{:?}",
        log_text(&h.stderr_path)
    );
    assert_eq!(
        log_text(&h.stdout_path),
        [
            "bar baz|1|/home/app|0|zero",
            "/tmp",
            "1000",
            "1000",
            "1000 10",
            "myhost",
            "myhost"
        ]
    );
}

fn readonly_root_bind_mounts_and_ulimits(backend: Backend) {
    if !root_or_skip("readonly_root_bind_mounts_and_ulimits") {
        return;
    }
    let env = Env::new(backend);
    let data = env.dir.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("f"), "from host\n").unwrap();
    let vol = env.dir.path().join("vol");
    fs::create_dir(&vol).unwrap();
    let mut spec = env.spec(
        &id("ro"),
        &["sh", "-c", "cat /data/f; touch /x 2>/dev/null || echo rootro; touch /data/y 2>/dev/null || echo dataro; echo hi > /vol/z; ulimit -n"],
    );
    spec.readonly_rootfs = true;
    spec.mounts.push(Mount {
        source: data.clone(),
        destination: "/data".into(),
        read_only: true,
    });
    spec.mounts.push(Mount {
        source: vol.clone(),
        destination: "/vol".into(),
        read_only: false,
    });
    spec.ulimits.push(berth_runtime::Ulimit {
        name: "nofile".into(),
        soft: 321,
        hard: 654,
    });
    let h = env.run(&spec);
    assert_eq!(
        env.rt.wait(&h.id, WAIT).unwrap().exit_code,
        0,
        "{:?}",
        log_text(&h.stderr_path)
    );
    assert_eq!(
        log_text(&h.stdout_path),
        ["from host", "rootro", "dataro", "321"]
    );
    assert_eq!(fs::read_to_string(vol.join("z")).unwrap(), "hi\n");
}

fn a_missing_executable_fails_the_start(backend: Backend) {
    if !root_or_skip("a_missing_executable_fails_the_start") {
        return;
    }
    let env = Env::new(backend);
    let spec = env.spec(&id("noexec"), &["/no/such/binary"]);
    let err = env.rt.create_and_start(&spec).unwrap_err();
    assert!(matches!(err, Error::Start { .. }), "{err}");
    assert!(err.to_string().contains("no such file"), "{err}");
    let ContainerState::Exited(exit) = env.rt.state(&spec.id).unwrap() else {
        panic!("not exited")
    };
    assert!(exit.error.is_some());
}

fn stop_sends_sigterm_then_sigkill_after_the_timeout(backend: Backend) {
    if !root_or_skip("stop_sends_sigterm_then_sigkill_after_the_timeout") {
        return;
    }
    let env = Env::new(backend);
    // PID 1 without a handler ignores SIGTERM: only SIGKILL after the timeout stops it.
    let stubborn = env.run(&env.spec(&id("stubborn"), &["sleep", "1000"]));
    // A shell that traps SIGTERM exits at once with its own code.
    let polite = env.run(&env.spec(
        &id("polite"),
        &[
            "sh",
            "-c",
            "trap 'echo bye; exit 7' TERM; echo ready; while true; do sleep 0.1; done",
        ],
    ));
    let deadline = Instant::now() + WAIT;
    while !log_text(&polite.stdout_path).contains(&"ready".to_string()) {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(matches!(
        env.rt.state(&stubborn.id).unwrap(),
        ContainerState::Running { .. }
    ));
    // The backend asked for made it: its state is where that backend keeps it.
    let oci_state = |dir: &str| {
        env.dir
            .path()
            .join("containers")
            .join(dir)
            .join(&stubborn.id)
    };
    let (made, other) = match backend {
        Backend::Runc => (".runc", ".libcontainer"),
        Backend::Libcontainer => (".libcontainer", ".runc"),
    };
    assert!(oci_state(made).exists(), "no {made} state");
    assert!(!oci_state(other).exists(), "{other} state");

    let t = Instant::now();
    let exit = env
        .rt
        .stop(&polite.id, Duration::from_secs(10), None)
        .unwrap();
    assert_eq!(exit.exit_code, 7);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(log_text(&polite.stdout_path), ["ready", "bye"]);

    let t = Instant::now();
    let exit = env
        .rt
        .stop(&stubborn.id, Duration::from_millis(1500), None)
        .unwrap();
    let took = t.elapsed();
    assert_eq!(exit.signal, Some(9));
    assert_eq!(exit.exit_code, 137);
    assert!(!exit.oom_killed);
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(10),
        "{took:?}"
    );
}

fn exceeding_the_memory_limit_is_reported_as_oom_killed(backend: Backend) {
    if !root_or_skip("exceeding_the_memory_limit_is_reported_as_oom_killed") {
        return;
    }
    let env = Env::new(backend);
    let mut spec = env.spec(
        &id("oom"),
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1"],
    );
    spec.resources.memory_mib = Some(16);
    spec.resources.memory_reservation_mib = Some(8);
    let h = env.run(&spec);
    let exit = env.rt.wait(&h.id, WAIT).unwrap();
    assert!(exit.oom_killed, "{exit:?}");
    assert_eq!(exit.signal, Some(9));
    assert_eq!(exit.exit_code, 137);
}

fn stats_read_the_cgroup(backend: Backend) {
    if !root_or_skip("stats_read_the_cgroup") {
        return;
    }
    let env = Env::new(backend);
    let mut spec = env.spec(
        &id("stats"),
        &[
            "sh",
            "-c",
            "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; echo done; sleep 1000",
        ],
    );
    spec.resources.memory_mib = Some(64);
    spec.resources.cpu_units = Some(512);
    spec.resources.pids_limit = Some(50);
    let h = env.run(&spec);
    let deadline = Instant::now() + WAIT;
    while log_text(&h.stdout_path).is_empty() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    let s = env.rt.stats(&h.id).unwrap();
    assert!(s.cpu_usage_ns > 1_000_000, "{s:?}");
    assert!(s.memory_usage_bytes > 0, "{s:?}");
    assert_eq!(s.memory_limit_bytes, Some(64 * 1024 * 1024));
    assert!(s.pids >= 1, "{s:?}");
    let exit = env
        .rt
        .stop(&h.id, Duration::from_millis(200), None)
        .unwrap();
    assert_eq!(exit.signal, Some(9));
}

/// Helper run in a child process by `the_container_survives_its_starter`: starts a
/// container and waits to be killed.
#[test]
fn helper_start_container_and_hang() {
    let Ok(root) = std::env::var("BERTH_RT_HELPER_ROOT") else {
        return;
    };
    let backend = Backend::from_env().unwrap();
    let rt = Runtime::new(common::runtime_config(std::path::Path::new(&root), backend)).unwrap();
    let spec: berth_runtime::ContainerSpec =
        serde_json::from_str(&std::env::var("BERTH_RT_HELPER_SPEC").unwrap()).unwrap();
    let h = rt.create_and_start(&spec).unwrap();
    println!("STARTED {}", h.pid);
    std::thread::sleep(Duration::from_secs(1000));
}

fn the_container_survives_its_starter_and_is_found_again(backend: Backend) {
    if !root_or_skip("the_container_survives_its_starter_and_is_found_again") {
        return;
    }
    let env = Env::new(backend);
    let spec = env.spec(
        &id("survivor"),
        &[
            "sh",
            "-c",
            "echo alive; trap 'echo term; exit 5' TERM; while true; do sleep 0.1; done",
        ],
    );
    let state_root = env.dir.path().join("containers");
    let mut starter = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_start_container_and_hang",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("BERTH_RT_HELPER_ROOT", &state_root)
        .env(Backend::ENV, backend.name())
        .env(
            "BERTH_RT_HELPER_SPEC",
            serde_json::to_string(&spec).unwrap(),
        )
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        if matches!(env.rt.state(&spec.id), Ok(ContainerState::Running { .. })) {
            break;
        }
        assert!(Instant::now() < deadline, "container never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
    // kill -9 the process that started it.
    starter.kill().unwrap();
    starter.wait().unwrap();
    std::thread::sleep(Duration::from_millis(300));

    // A new runtime over the same state root (an agent restart) finds it running.
    let rt = Runtime::new(common::runtime_config(&state_root, backend)).unwrap();
    let list = rt.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].0, spec);
    assert!(
        matches!(list[0].1, ContainerState::Running { .. }),
        "{:?}",
        list[0].1
    );
    let exit = rt.stop(&spec.id, Duration::from_secs(10), None).unwrap();
    assert_eq!(exit.exit_code, 5);
    assert_eq!(
        log_text(
            &env.dir
                .path()
                .join("containers")
                .join(&spec.id)
                .join("stdout.log")
        ),
        ["alive", "term"]
    );
}

fn host_network_and_an_existing_network_namespace(backend: Backend) {
    if !root_or_skip("host_network_and_an_existing_network_namespace") {
        return;
    }
    let env = Env::new(backend);
    let mut spec = env.spec(&id("hostnet"), &["sh", "-c", "cat /proc/net/dev | wc -l"]);
    spec.network = berth_runtime::NetworkMode::Host;
    let h = env.run(&spec);
    assert_eq!(
        env.rt.wait(&h.id, WAIT).unwrap().exit_code,
        0,
        "{:?}",
        log_text(&h.stderr_path)
    );
    let host_lines = fs::read_to_string("/proc/net/dev").unwrap().lines().count();
    assert_eq!(log_text(&h.stdout_path), [host_lines.to_string()]);

    // A new namespace has only loopback: 2 header lines + lo.
    let spec = env.spec(&id("newnet"), &["sh", "-c", "cat /proc/net/dev | wc -l"]);
    let h = env.run(&spec);
    assert_eq!(env.rt.wait(&h.id, WAIT).unwrap().exit_code, 0);
    assert_eq!(log_text(&h.stdout_path), ["3"]);

    // Joining the namespace of a running container (how a task's containers share one).
    let first = env.run(&env.spec(&id("netowner"), &["sleep", "1000"]));
    let mut spec = env.spec(&id("netjoin"), &["sh", "-c", "cat /proc/net/dev | wc -l"]);
    spec.network = berth_runtime::NetworkMode::Join(format!("/proc/{}/ns/net", first.pid).into());
    let h = env.run(&spec);
    assert_eq!(
        env.rt.wait(&h.id, WAIT).unwrap().exit_code,
        0,
        "{:?}",
        log_text(&h.stderr_path)
    );
    assert_eq!(log_text(&h.stdout_path), ["3"]);
    env.rt.kill(&first.id, 9).unwrap();
    env.rt.wait(&first.id, WAIT).unwrap();
}

/// Not a timed assertion: prints, for each backend, how long `create_and_start` takes
/// (overlay mount excluded) and the whole prepare + start + exit round trip, over sequential
/// starts. Run it alone (`--test-threads=1`) for figures not skewed by the other tests.
#[test]
fn start_latency_is_printed() {
    if !root_or_skip("start_latency_is_printed") {
        return;
    }
    for backend in BACKENDS {
        let env = Env::new(backend);
        // One start first, so that page cache and cgroup parents are warm for both.
        let warm = env.run(&env.spec(&id("latwarm"), &["true"]));
        env.rt.wait(&warm.id, WAIT).unwrap();
        env.rt.remove(&warm.id).unwrap();
        let mut start = Vec::new();
        let mut total = Vec::new();
        for i in 0..20 {
            let t0 = Instant::now();
            let spec = env.spec(&id(&format!("lat{i}")), &["true"]);
            let t1 = Instant::now();
            let h = env.run(&spec);
            start.push(t1.elapsed());
            env.rt.wait(&h.id, WAIT).unwrap();
            total.push(t0.elapsed());
            env.rt.remove(&h.id).unwrap();
        }
        start.sort();
        total.sort();
        eprintln!(
            "{backend:>12}: create_and_start p50 {:?} max {:?}; prepare_rootfs + start + exit p50 {:?} max {:?}",
            start[10], start[19], total[10], total[19]
        );
    }
}

fn task_level_limits_bound_the_containers_under_them(backend: Backend) {
    if !root_or_skip("task_level_limits_bound_the_containers_under_them") {
        return;
    }
    let env = Env::new(backend);
    let task = format!("/berth/{}", id("task"));
    let limits = berth_runtime::Resources {
        memory_mib: Some(24),
        cpu_units: Some(256),
        ..Default::default()
    };
    berth_runtime::cgroup::apply_task_limits(&task, &limits).unwrap();
    // The container itself has no memory limit: the task's applies.
    let mut spec = env.spec(
        &id("intask"),
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1"],
    );
    spec.cgroup_path = format!("{task}/c1");
    let h = env.run(&spec);
    let exit = env.rt.wait(&h.id, WAIT).unwrap();
    assert_eq!(exit.signal, Some(9), "{exit:?}");
    assert!(exit.oom_killed, "{exit:?}");
    env.rt.remove(&h.id).unwrap();
    berth_runtime::cgroup::remove(&task);
    assert!(
        berth_runtime::cgroup::dirs(&task)
            .iter()
            .all(|d| !d.exists())
    );
}

fn exec_runs_in_the_container_as_its_user(backend: Backend) {
    use berth_runtime::exec::ExecOutcome;
    if !root_or_skip("exec_runs_in_the_container_as_its_user") {
        return;
    }
    let env = Env::new(backend);
    let mut spec = env.spec(
        &id("exec"),
        &["sh", "-c", "echo x > /tmp/marker; sleep 1000"],
    );
    spec.env.push("FOO=bar".into());
    spec.working_dir = "/tmp".into();
    spec.user = "app".into();
    let h = env.run(&spec);
    let deadline = Instant::now() + WAIT;
    let check = |script: &str| -> Vec<String> { vec!["sh".into(), "-c".into(), script.into()] };
    // Its environment, user, working directory, mount and network namespaces.
    let inside = check(
        "test -f marker && test \"$FOO\" = bar && test \"$(id -u)\" = 1000 && test \"$(cat /proc/net/dev | wc -l)\" = 3",
    );
    loop {
        let out = env.rt.exec(&h.id, &inside, WAIT).unwrap();
        if out == ExecOutcome::Exited(0) {
            break;
        }
        assert!(Instant::now() < deadline, "{out:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        env.rt.exec(&h.id, &check("exit 4"), WAIT).unwrap(),
        ExecOutcome::Exited(4)
    );
    assert_eq!(
        env.rt
            .exec(&h.id, &check("sleep 5"), Duration::from_millis(300))
            .unwrap(),
        ExecOutcome::TimedOut
    );
    assert!(matches!(
        env.rt.exec(&h.id, &["/no/such".into()], WAIT).unwrap(),
        ExecOutcome::Exited(c) if c != 0
    ));
    env.rt
        .stop(&h.id, Duration::from_millis(100), None)
        .unwrap();
}
