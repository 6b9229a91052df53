//! Docker's flags in the runtime's terms: RunOptions → ContainerSpec. Pure
//! (no I/O: `run --rm` is on the benchmark), and the only place that knows
//! both. `--rm` and `-i`'s attach are the CLI's business and stay on the
//! options.

use super::{Network, RunOptions};
use crate::runtime::container::containerspec::{
    ContainerSpec, CpuQuota, EtcFiles, Mount, MountSource, Namespace, Namespaces, NetworkNamespace,
    Process, Resources, Security,
};

impl RunOptions {
    /// The container `skiff run IMAGE` with these options asks for.
    pub fn to_container_spec(&self, image: &str) -> ContainerSpec {
        let command = self.entrypoint.as_ref().map(|e| match e.as_str() {
            "" => Vec::new(),
            e => vec![e.to_string()],
        });
        let binds = self.binds.iter().map(|b| Mount {
            destination: b.destination.clone(),
            source: match &b.volume {
                Some(v) => MountSource::Volume(v.clone()),
                None => MountSource::Host(b.source.clone()),
            },
            read_only: b.read_only,
        });
        let tmpfs = self.tmpfs.iter().map(|t| Mount {
            destination: t.clone(),
            source: MountSource::Tmpfs,
            read_only: false,
        });
        let network = match self.network() {
            Network::None => NetworkNamespace::Isolated,
            Network::Host => NetworkNamespace::Host,
            Network::Join(p) => NetworkNamespace::Path(p),
            Network::Bridge => NetworkNamespace::Bridge {
                ports: self.ports.clone(),
                cidr: self.node_cidr,
            },
            Network::Container(c) => NetworkNamespace::Container(c),
        };
        ContainerSpec {
            image: image.to_string(),
            name: self.name.clone(),
            labels: self.labels.clone(),
            log_path: None,
            process: Process {
                command,
                args: self.cmd.clone(),
                env: self.env.clone(),
                cwd: self.workdir.clone().filter(|w| !w.is_empty()),
                user: self.user.clone(),
                tty: self.tty,
                stdin: self.interactive,
                init: self.init,
                rlimits: self.ulimits.clone(),
                // docker's --group-add and --oom-score-adj are not taken yet.
                groups: Vec::new(),
                oom_score_adj: None,
            },
            mounts: binds.chain(tmpfs).collect(),
            namespaces: Namespaces {
                network,
                // Docker's flags make them new; a sandbox's are joined when
                // the container is created.
                ipc: Namespace::New,
                uts: Namespace::New,
                host_pid: false,
                pid: Namespace::New,
                host_ipc: false,
            },
            sandbox: self.sandbox.clone(),
            resources: Resources {
                memory: self.memory,
                cpu: self.cpus.map(CpuQuota::of_cpus),
                pids: self.pids_limit,
                shm_size: self.shm_size,
                cpu_shares: None,
            },
            security: Security {
                cap_add: self.cap_add.clone(),
                cap_drop: self.cap_drop.clone(),
                seccomp: self.seccomp.clone(),
                privileged: self.privileged,
                devices: self.devices.clone(),
                // skiff always sets it, as `--security-opt no-new-privileges`.
                no_new_privileges: true,
                read_only_rootfs: self.read_only,
                sysctls: self.sysctls.clone(),
            },
            etc: EtcFiles {
                hostname: self.hostname.clone(),
                hosts: self.add_hosts.clone(),
                dns_servers: self.dns.clone(),
                dns_search: Vec::new(),
                dns_options: Vec::new(),
                dns_exact: false,
            },
            cgroup_parent: self.cgroup_parent.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Bind, DeviceMapping};
    use super::*;
    use crate::runtime::container::seccomp::Choice;

    #[test]
    fn every_flag_lands_in_the_spec() {
        let port = crate::net::ports::PublishedPort::parse("8080:80").unwrap();
        let opts = RunOptions {
            name: Some("web".into()),
            env: vec!["A=1".into()],
            workdir: Some("/srv".into()),
            user: Some("1000:1000".into()),
            entrypoint: Some("/bin/sh".into()),
            cmd: vec!["-c".into(), "true".into()],
            binds: vec![
                Bind::parse("/tmp:/h:ro").unwrap(),
                Bind::parse("data:/v").unwrap(),
            ],
            tmpfs: vec!["/scratch".into()],
            memory: Some(64 << 20),
            cpus: Some(1.5),
            pids_limit: Some(-1),
            read_only: true,
            network: Some(Network::Bridge),
            hostname: Some("box".into()),
            tty: true,
            interactive: true,
            auto_remove: true,
            init: true,
            cgroup_parent: Some("/p".into()),
            ports: vec![port.clone()],
            dns: vec!["10.0.0.2".parse().unwrap()],
            add_hosts: vec![("db".into(), "10.0.0.3".parse().unwrap())],
            node_cidr: Some("10.99.0.0/24".parse().unwrap()),
            seccomp: Choice::Unconfined,
            devices: vec![DeviceMapping::parse("/dev/null:/dev/n:r").unwrap()],
            privileged: true,
            labels: [("k".to_string(), "v".to_string())].into(),
            ..Default::default()
        };
        let s = opts.to_container_spec("busybox");
        assert_eq!(s.image, "busybox");
        assert_eq!(s.name.as_deref(), Some("web"));
        assert_eq!(s.labels["k"], "v");
        assert_eq!(
            s.process,
            Process {
                command: Some(vec!["/bin/sh".into()]),
                args: vec!["-c".into(), "true".into()],
                env: vec!["A=1".into()],
                cwd: Some("/srv".into()),
                user: Some("1000:1000".into()),
                tty: true,
                stdin: true,
                init: true,
                rlimits: Vec::new(),
                groups: Vec::new(),
                oom_score_adj: None,
            }
        );
        assert_eq!(
            s.mounts,
            vec![
                Mount {
                    destination: "/h".into(),
                    source: MountSource::Host("/tmp".into()),
                    read_only: true
                },
                Mount {
                    destination: "/v".into(),
                    source: MountSource::Volume("data".into()),
                    read_only: false
                },
                Mount {
                    destination: "/scratch".into(),
                    source: MountSource::Tmpfs,
                    read_only: false
                },
            ]
        );
        assert_eq!(
            s.namespaces.network,
            NetworkNamespace::Bridge {
                ports: vec![port],
                cidr: Some("10.99.0.0/24".parse().unwrap())
            }
        );
        assert_eq!(
            (s.namespaces.ipc.clone(), s.namespaces.uts.clone()),
            (Namespace::New, Namespace::New)
        );
        assert_eq!(
            s.resources,
            Resources {
                memory: Some(64 << 20),
                cpu: Some(CpuQuota {
                    quota: 150_000,
                    period: 100_000
                }),
                pids: Some(-1),
                shm_size: None,
                cpu_shares: None,
            }
        );
        assert!(s.security.privileged && s.security.read_only_rootfs);
        assert!(s.security.no_new_privileges);
        assert_eq!(s.security.seccomp, Choice::Unconfined);
        assert_eq!(s.security.devices[0].container, "/dev/n");
        assert_eq!(s.etc.hostname.as_deref(), Some("box"));
        assert_eq!(s.etc.hosts[0].0, "db");
        assert_eq!(s.etc.dns_servers.len(), 1);
        assert_eq!(s.cgroup_parent.as_deref(), Some("/p"));
        assert!(s.bridged());
    }

    #[test]
    fn entrypoint_and_networks() {
        let spec = |o: RunOptions| o.to_container_spec("i");
        let cleared = spec(RunOptions {
            entrypoint: Some(String::new()),
            ..Default::default()
        });
        assert_eq!(cleared.process.command, Some(vec![]));
        let plain = spec(RunOptions::default());
        assert_eq!(plain.process.command, None);
        assert_eq!(plain.namespaces.network, NetworkNamespace::Isolated);
        let host = spec(RunOptions {
            network: Some(Network::Host),
            ..Default::default()
        });
        assert_eq!(host.namespaces.network, NetworkNamespace::Host);
        let other = spec(RunOptions {
            network: Some(Network::Container("db".into())),
            ..Default::default()
        });
        assert_eq!(
            other.namespaces.network,
            NetworkNamespace::Container("db".into())
        );
        let sandboxed = spec(RunOptions {
            sandbox: Some("pod".into()),
            ..Default::default()
        });
        assert_eq!(sandboxed.sandbox.as_deref(), Some("pod"));
        assert_eq!(sandboxed.check(), Ok(()));
    }
}
