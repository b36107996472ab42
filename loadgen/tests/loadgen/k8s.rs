//! deploy/k8s held to the truth (no cluster here): every resource passes the Kubernetes schemas
//! strictly (kubernetes-validate, offline); the Indexed Job's pods run `--shard i/n` with n its completions; their flags are ones this
//! build's loadgen accepts and they reach the servers' Service; the merge Job merges exactly
//! their reports from the volume they write to; the servers' variables are ones the server reads.

use booking_loadgen::config::{Command, Config};
use clap::{CommandFactory, Parser};
use serde::Deserialize;
use serde_yaml::Value;

fn manifests(file: &str) -> Vec<Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/k8s")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).expect("valid YAML"))
        .collect()
}

fn object<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn container(pod_owner: &Value) -> &Value {
    &pod_owner["spec"]["template"]["spec"]["containers"][0]
}

/// The Kubernetes version the manifests are validated against.
const KUBERNETES: &str = "1.31.0";

/// `kubernetes-validate --strict` of `files`: whether they passed, and what it said; none
/// (the test skipped, or failed in CI) when the validator is not installed.
fn validate(files: &[std::path::PathBuf]) -> Option<(bool, String)> {
    let run = std::process::Command::new("kubernetes-validate")
        .args(["--strict", "-k", KUBERNETES])
        .args(files)
        .output();
    let Ok(out) = run else {
        testkit::present_or_skip(
            false,
            "kubernetes-validate not found (`pip install kubernetes-validate`)",
        );
        return None;
    };
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    Some((out.status.success(), text))
}

#[test]
fn every_manifest_passes_the_kubernetes_schemas_strictly() {
    // kubernetes-validate (PyPI; .ci/run installs it) holds each resource to the official
    // schemas of that version, offline; --strict refuses fields the schema does not know.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/k8s");
    let files = ["servers.yaml", "loadgen-job.yaml", "loadgen-merge.yaml"].map(|f| dir.join(f));
    let Some((ok, text)) = validate(&files) else {
        return;
    };
    assert!(ok, "the manifests do not validate:\n{text}");
    // Every resource was checked: ten of them, each named as passed.
    let passed = text
        .lines()
        .filter(|l| l.contains(" passed for resource "))
        .count();
    assert_eq!(passed, 10, "{text}");
    for doc in files
        .iter()
        .flat_map(|f| manifests(f.file_name().unwrap().to_str().unwrap()))
    {
        let kind = doc["kind"].as_str().unwrap().to_lowercase();
        let name = doc["metadata"]["name"].as_str().unwrap();
        assert!(
            text.contains(&format!("resource {kind}/{name} against")),
            "{kind}/{name} unchecked:\n{text}"
        );
    }
}

#[test]
fn a_manifest_with_a_field_the_schema_does_not_know_is_refused() {
    // The validator is not a formality: a misspelt field fails it.
    let dir = testkit::scratch_dir("k8s-bad");
    let good = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/k8s/servers.yaml"),
    )
    .unwrap();
    assert!(good.contains("replicas:"));
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, good.replacen("replicas:", "replicaz:", 1)).unwrap();
    let Some((ok, text)) = validate(&[bad]) else {
        return;
    };
    assert!(!ok, "{text}");
    assert!(text.contains("'replicaz' was unexpected"), "{text}");
}

#[test]
fn the_indexed_job_runs_every_shard_of_one_plan_and_the_merge_judges_them() {
    let servers = manifests("servers.yaml");
    let job_docs = manifests("loadgen-job.yaml");
    let job = object(&job_docs, "Job", "loadgen");
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    let n = spec["completions"].as_u64().unwrap() as usize;
    assert_eq!(
        spec["parallelism"].as_u64(),
        Some(n as u64),
        "all shards at once"
    );
    let c = container(job);
    assert_eq!(c["image"], "booking-loadgen:local");
    let args: Vec<&str> = c["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let env_names: Vec<&str> = c["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    let mut reports = Vec::new();
    for i in 0..n {
        let index = i.to_string();
        let argv: Vec<String> = std::iter::once("loadgen".to_string())
            .chain(args.iter().map(|a| {
                for var in ["AUTH_SECRET", "ACTIONS_AT"] {
                    if a.contains(&format!("$({var})")) {
                        assert!(
                            env_names.contains(&var),
                            "$({var}) is in the container's env"
                        );
                    }
                }
                a.replace("$(JOB_COMPLETION_INDEX)", &index)
                    .replace("$(AUTH_SECRET)", "s3cret")
                    .replace("$(ACTIONS_AT)", "0")
            }))
            .collect();
        let config = Config::try_parse_from(&argv).expect("the Job's loadgen flags parse");
        config
            .validate()
            .expect("the Job's loadgen flags are valid");
        assert_eq!(config.shard.to_string(), format!("{i}/{n}"));
        assert!(config.metrics_addr.is_some(), "each shard serves /metrics");
        // The host is the servers' Service.
        let host = &config.hosts[0];
        let (name, port) = host.trim_start_matches("http://").split_once(':').unwrap();
        let service = object(&servers, "Service", name);
        assert_eq!(
            service["spec"]["ports"][0]["port"].as_u64(),
            port.parse::<u64>().ok()
        );
        reports.push(config.report_json.unwrap());
    }
    let mount = &c["volumeMounts"][0];
    let dir = mount["mountPath"].as_str().unwrap();
    assert!(
        reports.iter().all(|r| r.starts_with(dir)),
        "reports on the volume"
    );
    let claim = |owner: &Value| {
        owner["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
            .clone()
    };
    object(
        &job_docs,
        "PersistentVolumeClaim",
        claim(job).as_str().unwrap(),
    );

    // The merge Job: the same volume, and a command that names exactly the shards' reports.
    let merge_docs = manifests("loadgen-merge.yaml");
    let merge = object(&merge_docs, "Job", "loadgen-merge");
    assert_eq!(claim(merge), claim(job));
    let m = container(merge);
    assert_eq!(m["image"], c["image"]);
    let script = m["command"][2].as_str().unwrap();
    let mut words = Vec::new();
    for word in script.split_whitespace() {
        if word.contains('*') {
            let (prefix, suffix) = word.split_once('*').unwrap();
            let matched: Vec<String> = reports
                .iter()
                .map(|r| r.display().to_string())
                .filter(|r| r.starts_with(prefix) && r.ends_with(suffix))
                .collect();
            assert_eq!(matched.len(), n, "`{word}` matches every shard's report");
            words.extend(matched);
        } else {
            words.push(word.to_string());
        }
    }
    let merge_config = Config::try_parse_from(&words).expect("the merge command parses");
    let Some(Command::Merge(args)) = merge_config.command else {
        panic!("not a merge: {script}");
    };
    assert_eq!(args.reports.len(), n);
    assert!(args.report_json.is_some() && args.report_junit.is_some());
}

#[test]
fn the_servers_get_variables_the_server_reads_and_a_readiness_probe() {
    let servers = manifests("servers.yaml");
    let deployment = object(&servers, "Deployment", "booking-server");
    let c = container(deployment);
    assert_eq!(c["image"], "booking-server:local");
    let known: Vec<String> = booking_server::config::Cli::command()
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect();
    let mut port = None;
    for var in c["env"].as_sequence().unwrap() {
        let name = var["name"].as_str().unwrap();
        assert!(
            known.iter().any(|k| k == name),
            "the server reads no {name}"
        );
        if name == "PORT" {
            port = var["value"].as_str().map(str::to_string);
        }
        if let Some(secret) = var["valueFrom"]["secretKeyRef"].as_mapping() {
            let secret_name = secret[&Value::from("name")].as_str().unwrap();
            let key = secret[&Value::from("key")].as_str().unwrap();
            let object = object(&servers, "Secret", secret_name);
            assert!(
                object["stringData"][key].is_string(),
                "secret {secret_name} has {key}"
            );
        }
    }
    let port: u64 = port.expect("PORT set").parse().unwrap();
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/ready");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"].as_u64(), Some(port));
    let service = object(&servers, "Service", "booking-server");
    assert_eq!(
        service["spec"]["ports"][0]["targetPort"].as_u64(),
        Some(port)
    );
    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["template"]["metadata"]["labels"]
    );
    // The URLs the servers use name Services of this file.
    for var in ["DATABASE_URL", "REDIS_URL"] {
        let url = c["env"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|e| e["name"] == var)
            .and_then(|e| e["value"].as_str())
            .unwrap();
        let host = url
            .rsplit('@')
            .next()
            .unwrap()
            .trim_start_matches("redis://");
        let name = host.split(':').next().unwrap();
        object(&servers, "Service", name);
    }
}
