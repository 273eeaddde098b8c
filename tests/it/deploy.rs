//! deploy/: the Kubernetes manifests and the compose file parse, refer to each other
//! consistently, give every router listening beyond its pod its API tokens from a Secret
//! (tests/deploy_check.py), and every pipeline they run passes `sluice validate`, as
//! written and with the manifests' API address and tokens file; the Kubernetes ConfigMap
//! holds exactly the files in pipelines/.

use crate::util::{have_tool, repo_root, sluice_bin, tempdir};

#[test]
fn every_pipeline_in_deploy_validates() {
    if !have_tool("python3") {
        return;
    }
    let root = repo_root();
    let output = std::process::Command::new("python3")
        .arg(root.join("tests/deploy_check.py"))
        .arg(&root)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "deploy_check.py failed (is PyYAML installed? scripts/test installs it):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let errors = report["errors"].as_array().unwrap();
    assert!(errors.is_empty(), "deploy/ is inconsistent: {errors:#?}");

    let dir = tempdir();
    let mut files = Vec::new();
    let pipelines = report["pipelines"].as_array().unwrap();
    assert!(
        !pipelines.is_empty(),
        "no pipelines found in deploy/kubernetes"
    );
    for (i, pipeline) in pipelines.iter().enumerate() {
        let origin = pipeline["origin"].as_str().unwrap();
        let toml = pipeline["toml"].as_str().unwrap();
        let key = pipeline["key"].as_str().unwrap();
        let original = std::fs::read_to_string(root.join("pipelines").join(key))
            .unwrap_or_else(|e| panic!("{origin}: no pipelines/{key}: {e}"));
        assert_eq!(
            toml, original,
            "{origin} differs from pipelines/{key}: run deploy/kubernetes/gen-pipelines-configmap"
        );
        let file = dir.path().join(format!("{i}-{key}"));
        std::fs::write(&file, toml).unwrap();
        files.push(file);
    }
    let compose_files = report["pipeline_files"].as_array().unwrap();
    assert!(
        !compose_files.is_empty(),
        "the compose file runs no pipeline"
    );
    for file in compose_files {
        files.push(root.join(file.as_str().unwrap()));
    }
    let validate = |env: &[(&str, &str)]| {
        let mut command = std::process::Command::new(sluice_bin());
        command
            .arg("validate")
            .args(&files)
            .env_remove("SLUICE_API")
            .env_remove("SLUICE_API_TOKENS_FILE");
        for (name, value) in env {
            command.env(name, value);
        }
        let output = command.output().unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        (output.status.success(), text)
    };
    let (ok, text) = validate(&[]);
    assert!(ok, "sluice validate failed:\n{text}");
    // As the manifests run them: the API on every address, with the Secret's tokens file
    // (deploy_check.py checks that each one sets it); without it, refused.
    let (ok, text) = validate(&[
        ("SLUICE_API", "0.0.0.0:8686"),
        ("SLUICE_API_TOKENS_FILE", "/run/secrets/sluice/tokens"),
    ]);
    assert!(
        ok,
        "sluice validate with the manifests' environment failed:\n{text}"
    );
    let (ok, text) = validate(&[("SLUICE_API", "0.0.0.0:8686")]);
    assert!(
        !ok && text.contains("api.auth"),
        "an API on 0.0.0.0 without tokens must be refused:\n{text}"
    );
}
