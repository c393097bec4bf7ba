//! Debian's haproxy, nginx and keepalived accept the rendered load-balancer configurations. Absolute
//! paths that point into the node's filesystem are rewritten into a temp root; everything else is
//! checked as rendered.

mod render_support;

use std::path::Path;
use std::process::Command;

use render_support::*;

const HAPROXY: &str = "/usr/sbin/haproxy";
const NGINX: &str = "/usr/sbin/nginx";
const KEEPALIVED: &str = "/usr/sbin/keepalived";

fn lb_nodes(fixture: &str) -> Vec<String> {
    let c = cluster(fixture);
    c.nodes
        .iter()
        .filter(|n| n.role.as_str() == "load-balancer")
        .map(|n| n.name.to_string())
        .collect()
}

#[test]
fn haproxy_accepts_its_config() {
    require(HAPROXY);
    let c = cluster("stacked-haproxy");
    for name in lb_nodes("stacked-haproxy") {
        let files = render(&c, node(&c, &name));
        let tmp = tempdir();
        write_tree(tmp.path(), &files);
        let cfg = tmp.path().join("etc/haproxy/kimage.cfg");
        let (ok, out) = run(Command::new(HAPROXY).arg("-c").arg("-f").arg(&cfg));
        assert!(
            ok && out.contains("Configuration file is valid"),
            "{name}: haproxy -c:\n{out}"
        );
        // The unit checks and runs exactly that file.
        let unit = text(&files, "/etc/systemd/system/haproxy.service");
        assert!(
            unit.contains("ExecStart=/usr/sbin/haproxy -Ws -f /etc/haproxy/kimage.cfg"),
            "{unit}"
        );
        let t = text(&files, "/etc/haproxy/kimage.cfg");
        for b in [
            "192.168.31.71:6443",
            "192.168.31.72:6443",
            "192.168.31.73:6443",
        ] {
            assert!(t.contains(b), "backend {b} missing");
        }
    }
    // The check can fail: a config naming an unknown keyword is rejected.
    let tmp = tempdir();
    let bad = tmp.path().join("bad.cfg");
    std::fs::write(
        &bad,
        "defaults\n    mode tcp\nbackend b\n    sever x 127.0.0.1:1\n",
    )
    .unwrap();
    let (ok, _) = run(Command::new(HAPROXY).arg("-c").arg("-f").arg(&bad));
    assert!(!ok);
}

#[test]
fn nginx_accepts_its_config() {
    require(NGINX);
    require("/usr/lib/nginx/modules/ngx_stream_module.so");
    let c = cluster("external-nginx");
    for name in lb_nodes("external-nginx") {
        let files = render(&c, node(&c, &name));
        let tmp = tempdir();
        write_tree(tmp.path(), &files);
        let cfg = tmp.path().join("etc/nginx/kimage.conf");
        // nginx -t opens the pid file's directory and the compiled-in error log; keep both in the root.
        let t = std::fs::read_to_string(&cfg).unwrap().replace(
            "pid /run/nginx.pid;",
            &format!("pid {}/nginx.pid;", tmp.path().display()),
        );
        std::fs::write(&cfg, t).unwrap();
        std::fs::create_dir_all(tmp.path().join("logs")).unwrap();
        let (ok, out) = run(Command::new(NGINX)
            .arg("-t")
            .arg("-p")
            .arg(tmp.path())
            .arg("-e")
            .arg("stderr")
            .arg("-c")
            .arg(&cfg));
        assert!(
            ok && out.contains("test is successful"),
            "{name}: nginx -t:\n{out}"
        );
        let rendered = text(&files, "/etc/nginx/kimage.conf");
        assert!(rendered.contains("listen 8543;"), "{rendered}");
        assert!(
            rendered.contains("server 192.168.0.2:6443 ")
                && rendered.contains("server 192.168.0.3:6443 ")
        );
    }
    let tmp = tempdir();
    let bad = tmp.path().join("bad.conf");
    std::fs::write(
        &bad,
        "events {}\nstream { server { listen 1; proxy_pas x; } }\n",
    )
    .unwrap();
    let (ok, _) = run(Command::new(NGINX)
        .arg("-t")
        .arg("-p")
        .arg(tmp.path())
        .arg("-e")
        .arg("stderr")
        .arg("-c")
        .arg(&bad));
    assert!(!ok);
}

/// `keepalived --config-test` on a node's config, with the check script path moved into the root.
/// keepalived rejects a config naming an interface the host lacks, so the test runs in a network
/// namespace of its own that has a (veth) interface of the profile's name.
fn keepalived_test(
    root: &Path,
    files: &[kimage::render::RenderedFile],
    interface: &str,
) -> (bool, String) {
    write_tree(root, files);
    let cfg = root.join("etc/keepalived/kimage.conf");
    let script = root.join("etc/keepalived/kimage-check-proxy");
    let t = std::fs::read_to_string(&cfg).unwrap().replace(
        "\"/etc/keepalived/kimage-check-proxy\"",
        &format!("\"{}\"", script.display()),
    );
    std::fs::write(&cfg, t).unwrap();
    in_netns_with(
        interface,
        Command::new(KEEPALIVED)
            .arg("--config-test")
            .arg("--use-file")
            .arg(&cfg)
            .arg("--log-console"),
    )
}

fn in_netns_with(interface: &str, cmd: &mut Command) -> (bool, String) {
    require("/usr/bin/unshare");
    require("/usr/sbin/ip");
    let mut argv = vec![cmd.get_program().to_string_lossy().into_owned()];
    argv.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    let script = format!("ip link add {interface} type veth peer name kimage-peer && exec \"$@\"");
    let (ok, out) = run(Command::new("/usr/bin/unshare")
        .args(["--net", "/bin/sh", "-c", &script, "sh"])
        .args(&argv));
    assert!(
        !out.contains("Operation not permitted") && !out.contains("unshare failed"),
        "creating a network namespace needs root (CAP_SYS_ADMIN): {out}"
    );
    (ok, out)
}

#[test]
fn keepalived_accepts_its_config() {
    require(KEEPALIVED);
    let c = cluster("stacked-haproxy");
    for name in lb_nodes("stacked-haproxy") {
        let files = render(&c, node(&c, &name));
        let tmp = tempdir();
        let iface = &c.load_balancer.as_ref().unwrap().interface;
        let (ok, out) = keepalived_test(tmp.path(), &files, iface);
        assert!(ok, "{name}: keepalived --config-test:\n{out}");
        let complaints: Vec<&str> = out
            .lines()
            .filter(|l| {
                let l = l.to_lowercase();
                l.contains("warning")
                    || l.contains("unknown")
                    || l.contains("error")
                    || l.contains("unsafe")
                    || l.contains("disabl")
            })
            .collect();
        assert!(
            complaints.is_empty(),
            "{name}: keepalived complains:\n{out}"
        );
        // The check script's bash syntax is valid.
        let (ok, out) = run(Command::new("/bin/bash")
            .arg("-n")
            .arg(tmp.path().join("etc/keepalived/kimage-check-proxy")));
        assert!(ok, "{out}");
    }
    // The check can fail: an unknown keyword is rejected by --config-test.
    let tmp = tempdir();
    let bad = tmp.path().join("bad.conf");
    std::fs::write(&bad, "vrrp_instance x {\n    state MASTER\n    interface lo\n    virtual_router_id 300\n    priority 100\n}\n").unwrap();
    let (ok, out) = in_netns_with(
        "ens3",
        Command::new(KEEPALIVED)
            .arg("--config-test")
            .arg("--use-file")
            .arg(&bad)
            .arg("--log-console"),
    );
    assert!(!ok, "keepalived accepted a broken config:\n{out}");
}

#[test]
fn check_script_follows_the_proxy_port() {
    // The vrrp_script succeeds while something accepts connections on the proxy port and fails when
    // nothing does: run it against a listener on 127.0.0.1 (loopback only).
    let c = cluster("stacked-haproxy");
    let files = render(&c, node(&c, "lb-1"));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let script =
        text(&files, "/etc/keepalived/kimage-check-proxy").replace("/6443", &format!("/{port}"));
    let tmp = tempdir();
    let path = tmp.path().join("check");
    std::fs::write(&path, script).unwrap();
    let (ok, out) = run(Command::new("/bin/bash").arg(&path));
    assert!(ok, "check failed with a listener:\n{out}");
    drop(listener);
    let (ok, _) = run(Command::new("/bin/bash").arg(&path));
    assert!(!ok, "check succeeded without a listener");
}
