//! A fake upstream: small release files in the real upstream layout (dl.k8s.io, GitHub release paths)
//! with their checksum files in each project's real format, to serve from `http::TestServer` or write
//! into a directory for a file:// mirror. Digests come from sha256sum/sha512sum, tarballs from GNU tar.

use std::collections::BTreeMap;
use std::path::Path;

use super::fixtures::{fake_binary, sha256, sha512, tar_gz};
use super::http::TestServer;

#[derive(Debug, Clone)]
pub struct Versions {
    pub kubernetes: String,
    pub etcd: String,
    pub containerd: String,
    pub runc: String,
    pub crictl: String,
    pub cni: String,
    pub cfssl: String,
}

impl Versions {
    /// The default version set, all in the built-in catalog (cfssl has no catalog digest).
    pub fn catalogued() -> Versions {
        Versions {
            kubernetes: "1.35.0".into(),
            etcd: "3.6.12".into(),
            containerd: "2.2.4".into(),
            runc: "1.4.2".into(),
            crictl: "1.35.0".into(),
            cni: "1.9.1".into(),
            cfssl: "1.6.5".into(),
        }
    }

    /// Versions outside the built-in catalog (so they must be resolved from checksum files).
    pub fn uncatalogued() -> Versions {
        Versions {
            kubernetes: "1.35.99".into(),
            etcd: "3.6.99".into(),
            containerd: "2.2.99".into(),
            runc: "1.4.99".into(),
            crictl: "1.35.99".into(),
            cni: "1.9.99".into(),
            cfssl: "1.6.5".into(),
        }
    }
}

pub const KUBE_BINARIES: [&str; 7] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
    "kubeadm",
];
pub const CNI_PLUGINS: [&str; 4] = ["bridge", "host-local", "loopback", "portmap"];

pub struct FakeUpstream {
    /// URL path → bytes.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Installed program name (`kubelet`, `ctr`, `bridge`, …) → its bytes.
    pub programs: BTreeMap<String, Vec<u8>>,
    pub arch: String,
}

impl FakeUpstream {
    pub fn new(v: &Versions, arch: &str) -> FakeUpstream {
        let mut f = FakeUpstream {
            files: BTreeMap::new(),
            programs: BTreeMap::new(),
            arch: arch.to_string(),
        };
        let prog = |f: &mut FakeUpstream, name: &str, version: &str| -> Vec<u8> {
            let b = fake_binary(
                &format!("{name} v{version} {arch}"),
                40_000 + name.len() * 1000,
            );
            f.programs.insert(name.to_string(), b.clone());
            b
        };

        // Kubernetes: single files with bare-digest .sha256 sidecars, and server/node tarballs whose
        // SHA512 is in the CHANGELOG (a decoy section for another patch release comes first).
        let k = &v.kubernetes;
        let mut server = Vec::new();
        let mut node = Vec::new();
        for name in KUBE_BINARIES {
            let b = prog(&mut f, name, k);
            let path = format!("/release/v{k}/bin/linux/{arch}/{name}");
            f.files
                .insert(format!("{path}.sha256"), sha256(&b).into_bytes());
            f.files.insert(path, b.clone());
            server.push((format!("kubernetes/server/bin/{name}"), b.clone(), 0o755));
            if matches!(name, "kubelet" | "kube-proxy" | "kubectl" | "kubeadm") {
                node.push((format!("kubernetes/node/bin/{name}"), b, 0o755));
            }
        }
        server.push((
            "kubernetes/server/bin/kube-apiserver.tar".into(),
            b"image".to_vec(),
            0o644,
        ));
        let server = tar_gz(&as_refs(&server), false);
        let node = tar_gz(&as_refs(&node), false);
        let (maj, min) = {
            let mut it = k.split('.');
            (
                it.next().unwrap().to_string(),
                it.next().unwrap().to_string(),
            )
        };
        let decoy = "f".repeat(128);
        let changelog = format!(
            "<!-- BEGIN MUNGE: GENERATED_TOC -->\n\n# v{maj}.{min}.100\n\n## Downloads for v{maj}.{min}.100\n\n### Server Binaries\n\n\
             filename | sha512 hash\n-------- | -----------\n\
             [kubernetes-server-linux-{arch}.tar.gz](https://dl.k8s.io/v{maj}.{min}.100/kubernetes-server-linux-{arch}.tar.gz) | {decoy}\n\n\
             # v{k}\n\n## Downloads for v{k}\n\n### Source Code\n\nfilename | sha512 hash\n-------- | -----------\n\
             [kubernetes.tar.gz](https://dl.k8s.io/v{k}/kubernetes.tar.gz) | {decoy}\n\n\
             ### Server Binaries\n\nfilename | sha512 hash\n-------- | -----------\n\
             [kubernetes-server-linux-{arch}.tar.gz](https://dl.k8s.io/v{k}/kubernetes-server-linux-{arch}.tar.gz) | {}\n\n\
             ### Node Binaries\n\nfilename | sha512 hash\n-------- | -----------\n\
             [kubernetes-node-linux-{arch}.tar.gz](https://dl.k8s.io/v{k}/kubernetes-node-linux-{arch}.tar.gz) | {}\n\n\
             ## Changelog since v{maj}.{min}.0\n",
            sha512(&server),
            sha512(&node)
        );
        f.files.insert(
            format!("/v{k}/kubernetes-server-linux-{arch}.tar.gz"),
            server,
        );
        f.files
            .insert(format!("/v{k}/kubernetes-node-linux-{arch}.tar.gz"), node);
        f.files.insert(
            format!("/kubernetes/kubernetes/master/CHANGELOG/CHANGELOG-{maj}.{min}.md"),
            changelog.into_bytes(),
        );

        // etcd: tarball with a versioned top directory; SHA256SUMS lists every asset.
        let e = &v.etcd;
        let top = format!("etcd-v{e}-linux-{arch}");
        let members: Vec<(String, Vec<u8>, u32)> = ["etcd", "etcdctl", "etcdutl"]
            .iter()
            .map(|n| (format!("{top}/{n}"), prog(&mut f, n, e), 0o755))
            .chain([(format!("{top}/README.md"), b"readme".to_vec(), 0o644)])
            .collect();
        let etcd = tar_gz(&as_refs(&members), false);
        let sums = format!(
            "{}  etcd-v{e}-linux-ppc64le.tar.gz\n{}  {top}.tar.gz\n{}  etcd-v{e}-darwin-arm64.zip\n",
            "1".repeat(64),
            sha256(&etcd),
            "2".repeat(64)
        );
        f.files.insert(
            format!("/etcd-io/etcd/releases/download/v{e}/{top}.tar.gz"),
            etcd,
        );
        f.files.insert(
            format!("/etcd-io/etcd/releases/download/v{e}/SHA256SUMS"),
            sums.into_bytes(),
        );

        // containerd: bin/… tarball, `DIGEST  NAME` sidecar.
        let c = &v.containerd;
        let members: Vec<(String, Vec<u8>, u32)> = [
            "containerd",
            "containerd-shim-runc-v2",
            "ctr",
            "containerd-stress",
        ]
        .iter()
        .map(|n| (format!("bin/{n}"), prog(&mut f, n, c), 0o755))
        .collect();
        let ctd = tar_gz(&as_refs(&members), false);
        let name = format!("containerd-{c}-linux-{arch}.tar.gz");
        let base = format!("/containerd/containerd/releases/download/v{c}/{name}");
        f.files.insert(
            format!("{base}.sha256sum"),
            format!("{}  {name}\n", sha256(&ctd)).into_bytes(),
        );
        f.files.insert(base, ctd);

        // runc: single file per arch; one PGP clear-signed runc.sha256sum for all arches.
        let r = &v.runc;
        let runc = prog(&mut f, "runc", r);
        let other = if arch == "amd64" { "arm64" } else { "amd64" };
        let sums = format!(
            "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n{}  runc.{other}\n{}  runc.{arch}\n{}  runc.tar.xz\n\
             -----BEGIN PGP SIGNATURE-----\n\niQIzBAEBCAAdFiEE\n-----END PGP SIGNATURE-----\n",
            "3".repeat(64),
            sha256(&runc),
            "4".repeat(64)
        );
        f.files.insert(
            format!("/opencontainers/runc/releases/download/v{r}/runc.{arch}"),
            runc,
        );
        f.files.insert(
            format!("/opencontainers/runc/releases/download/v{r}/runc.sha256sum"),
            sums.into_bytes(),
        );

        // crictl: tarball with crictl at the top, `DIGEST  NAME` .sha256 sidecar.
        let x = &v.crictl;
        let crictl = tar_gz(&[("crictl", prog(&mut f, "crictl", x), 0o755)], false);
        let name = format!("crictl-v{x}-linux-{arch}.tar.gz");
        let base = format!("/kubernetes-sigs/cri-tools/releases/download/v{x}/{name}");
        f.files.insert(
            format!("{base}.sha256"),
            format!("{}  {name}\n", sha256(&crictl)).into_bytes(),
        );
        f.files.insert(base, crictl);

        // CNI plugins: `./NAME` entries, LICENSE and README not executable.
        let n = &v.cni;
        let mut members: Vec<(String, Vec<u8>, u32)> = CNI_PLUGINS
            .iter()
            .map(|p| (p.to_string(), prog(&mut f, p, n), 0o755))
            .collect();
        members.push(("LICENSE".into(), b"Apache-2.0".to_vec(), 0o644));
        members.push(("README.md".into(), b"plugins".to_vec(), 0o644));
        let cni = tar_gz(&as_refs(&members), true);
        let name = format!("cni-plugins-linux-{arch}-v{n}.tgz");
        let base = format!("/containernetworking/plugins/releases/download/v{n}/{name}");
        f.files.insert(
            format!("{base}.sha256"),
            format!("{}  {name}\n", sha256(&cni)).into_bytes(),
        );
        f.files.insert(base, cni);

        // cfssl: single files; one checksums.txt for every asset.
        let s = &v.cfssl;
        let mut sums = String::new();
        for p in ["cfssl", "cfssljson", "mkbundle"] {
            let b = prog(&mut f, p, s);
            let name = format!("{p}_{s}_linux_{arch}");
            sums.push_str(&format!("{}  {name}\n", sha256(&b)));
            f.files.insert(
                format!("/cloudflare/cfssl/releases/download/v{s}/{name}"),
                b,
            );
        }
        sums.push_str(&format!("{}  cfssl_{s}_darwin_amd64\n", "5".repeat(64)));
        f.files.insert(
            format!("/cloudflare/cfssl/releases/download/v{s}/cfssl_{s}_checksums.txt"),
            sums.into_bytes(),
        );
        f
    }

    /// Serves every file under `prefix` (e.g. "/mirror").
    pub fn serve(&self, srv: &TestServer, prefix: &str) {
        for (p, b) in &self.files {
            srv.put(&format!("{prefix}{p}"), b.clone());
        }
    }

    /// Writes every file under `dir`, for a file:// mirror.
    pub fn write_to(&self, dir: &Path) {
        for (p, b) in &self.files {
            let full = dir.join(p.trim_start_matches('/'));
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, b).unwrap();
        }
    }

    pub fn program(&self, name: &str) -> &[u8] {
        self.programs
            .get(name)
            .unwrap_or_else(|| panic!("no fake program {name}"))
    }
}

/// A profile like DESIGN.md's example: two control-plane nodes (stacked etcd), a worker, an etcd node
/// and a load balancer. `extra` is appended under `binaries:` (e.g. `  mirror: http://…`).
pub fn profile_yaml(v: &Versions, arch: &str, binaries_extra: &str) -> String {
    format!(
        "apiVersion: kimage/v1alpha1
kind: Cluster
name: prod
kubernetes:
  version: v{k}
controlPlane:
  endpoint: 192.168.31.75:6443
loadBalancer:
  kind: haproxy
  vip: 192.168.31.75
etcd:
  version: v{e}
  topology: stacked
containerRuntime:
  containerd: v{c}
  runc: v{r}
  crictl: v{x}
  cniPlugins: v{n}
binaries:
  arch: {arch}
{binaries_extra}
nodes:
  - {{name: master-1, role: control-plane, address: 192.168.31.71}}
  - {{name: master-2, role: control-plane, address: 192.168.31.73}}
  - {{name: node-1,   role: worker,        address: 192.168.31.72}}
  - {{name: etcd-1,   role: etcd,          address: 192.168.31.81}}
  - {{name: lb-1,     role: load-balancer, address: 192.168.31.76, priority: 150}}
",
        k = v.kubernetes,
        e = v.etcd,
        c = v.containerd,
        r = v.runc,
        x = v.crictl,
        n = v.cni,
    )
}

fn as_refs(v: &[(String, Vec<u8>, u32)]) -> Vec<(&str, Vec<u8>, u32)> {
    v.iter()
        .map(|(p, b, m)| (p.as_str(), b.clone(), *m))
        .collect()
}

/// `kimage lock` on a profile file, as the CLI runs it (load, resolve, lock).
pub fn lock(
    profile: &Path,
    args: &kimage::release::command::LockArgs,
) -> Result<kimage::release::command::LockOutcome, kimage::release::command::CommandError> {
    let loaded = kimage::profile::load_file(profile)?;
    let cluster = kimage::model::Cluster::resolve(&loaded.profile);
    kimage::release::command::run_lock(profile, &cluster, args)
}

/// `kimage fetch` on a profile file, as the CLI runs it.
pub fn fetch(
    profile: &Path,
    args: &kimage::release::command::FetchArgs,
) -> Result<Vec<kimage::release::fetch::Fetched>, kimage::release::command::CommandError> {
    let loaded = kimage::profile::load_file(profile)?;
    let cluster = kimage::model::Cluster::resolve(&loaded.profile);
    kimage::release::command::run_fetch(Some((profile, &cluster)), args, None)
}
