use std::net::{IpAddr, Ipv4Addr};

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, ExecAction, HTTPGetAction, HTTPHeader, Probe, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::runtime::pod::testing::FakePodRuntime;

fn container() -> Container {
    Container {
        name: "web".into(),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: 8080,
            ..Default::default()
        }]),
        ..Default::default()
    }
}

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

#[test]
fn actions_resolve_named_ports_and_hosts() {
    let c = container();
    let t = Target {
        pod_ip: "10.42.0.7".parse().unwrap(),
        container: &c,
    };
    let p = Probe {
        http_get: Some(HTTPGetAction {
            port: IntOrString::String("http".into()),
            path: Some("healthz".into()),
            http_headers: Some(vec![HTTPHeader {
                name: "X-A".into(),
                value: "1".into(),
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    match of_probe(&t, &p).unwrap() {
        Action::Http {
            https,
            addr,
            host,
            path,
            headers,
        } => {
            assert!(!https);
            assert_eq!(addr.to_string(), "10.42.0.7:8080");
            assert_eq!(host, "10.42.0.7:8080");
            assert_eq!(path, "/healthz");
            assert_eq!(headers, vec![("X-A".to_string(), "1".to_string())]);
        }
        other => panic!("{other:?}"),
    }
    let p = Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::String("nope".into()),
            host: None,
        }),
        ..Default::default()
    };
    assert_eq!(
        of_probe(&t, &p).unwrap_err(),
        "couldn't find port: nope in web"
    );
    assert!(of_probe(&t, &Probe::default()).is_err());
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A one-shot HTTP server answering `status`; the request it got.
async fn serve(status: u16) -> (SocketAddr, tokio::task::JoinHandle<String>) {
    let l = tokio::net::TcpListener::bind((LOCAL, 0)).await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).await.unwrap();
        let reply = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n");
        s.write_all(reply.as_bytes()).await.unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    });
    (addr, task)
}

#[test]
fn http_probes_judge_the_status_code() {
    rt().block_on(async {
        let fake = FakePodRuntime::new();
        for (status, ok) in [(200, true), (302, true), (404, false), (500, false)] {
            let (addr, got) = serve(status).await;
            let action = Action::Http {
                https: false,
                addr,
                host: addr.to_string(),
                path: "/healthz".into(),
                headers: vec![("X-Probe".into(), "yes".into())],
            };
            let out = run(&fake, "c", &action, Duration::from_secs(5)).await;
            assert_eq!(out == Outcome::Success, ok, "{status}: {out:?}");
            let req = got.await.unwrap();
            assert!(req.starts_with("GET /healthz HTTP/1.1\r\n"), "{req}");
            assert!(req.contains("User-Agent: kube-probe/1.32\r\n"), "{req}");
            assert!(req.contains("X-Probe: yes\r\n"), "{req}");
            if !ok {
                assert_eq!(
                    out,
                    Outcome::Failure(format!("HTTP probe failed with statuscode: {status}"))
                );
            }
        }
    });
}

#[test]
fn tcp_probes_connect() {
    rt().block_on(async {
        let fake = FakePodRuntime::new();
        let l = tokio::net::TcpListener::bind((LOCAL, 0)).await.unwrap();
        let addr = l.local_addr().unwrap();
        let out = run(&fake, "c", &Action::Tcp(addr), Duration::from_secs(5)).await;
        assert_eq!(out, Outcome::Success);
        drop(l);
        match run(&fake, "c", &Action::Tcp(addr), Duration::from_secs(5)).await {
            Outcome::Failure(m) => assert!(m.starts_with(&format!("dial tcp {addr}")), "{m}"),
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn exec_probes_use_the_exit_code() {
    rt().block_on(async {
        use crate::runtime::pod::{PodRuntime, SandboxConfig};
        let fake = FakePodRuntime::new();
        fake.run_sandbox(SandboxConfig {
            name: "sb".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        let id = fake
            .create_container("sb", Default::default())
            .await
            .unwrap();
        fake.start_container(&id).await.unwrap();
        let action = of_probe(
            &Target {
                pod_ip: LOCAL,
                container: &container(),
            },
            &Probe {
                exec: Some(ExecAction {
                    command: Some(vec!["cat".into(), "/tmp/healthy".into()]),
                }),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            run(&fake, &id, &action, Duration::from_secs(1)).await,
            Outcome::Success
        );
        fake.exec_gives(Some(1), "cat: can't open '/tmp/healthy'\n");
        assert_eq!(
            run(&fake, &id, &action, Duration::from_secs(1)).await,
            Outcome::Failure("cat: can't open '/tmp/healthy'".into())
        );
        fake.exec_gives(None, "");
        match run(&fake, &id, &action, Duration::from_secs(1)).await {
            Outcome::Failure(m) => assert!(m.starts_with("command timed out"), "{m}"),
            other => panic!("{other:?}"),
        }
    });
}
