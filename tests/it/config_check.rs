//! `serverless-wasm check`: a good config is summarised; each kind of bad
//! config is refused with a message naming the file, line and key.

use crate::harness::check;

#[test]
fn a_good_config_is_summarised() {
    let (ok, output) = check(&format!(
        "listen_address = \"127.0.0.1:0\"\n{}",
        std::fs::read_to_string(crate::harness::samples_dir().join("config.toml"))
            .unwrap()
            .replace("listen_address = \"127.0.0.1:8080\"", "")
            .replace("file_path = \"", "file_path = \"{samples}/")
    ));
    assert!(ok, "{output}");
    assert!(output.contains(": OK"), "{output}");
    assert!(output.contains("GET /hello"), "{output}");
    assert!(output.contains("core module (serverless-wasm ABI)"), "{output}");
    assert!(output.contains("GET /static                  static"), "{output}");
}

#[test]
fn the_shipped_sample_configs_pass() {
    for name in ["config.toml", "backends.toml"] {
        let (ok, output) = crate::harness::check_file(&crate::harness::samples_dir().join(name));
        assert!(ok, "samples/{name}: {output}");
    }
}

/// Each case: config body, then pieces the error must contain.
#[test]
fn each_kind_of_bad_config_is_refused_with_its_location() {
    let route = |extra: &str| {
        format!("listen_address = \"127.0.0.1:0\"\n\n[[applications]]\nmethod = \"GET\"\nurl_path = \"/x\"\n{extra}\n")
    };
    let cases: Vec<(String, Vec<&str>)> = vec![
        (route("file_path = \"{samples}/env.wat\"\ncolour = \"blue\""), vec![":7:1:", "unknown field `colour`"]),
        (
            "listen_address = \"127.0.0.1:0\"\n[[applications]]\nmethod = \"FETCH\"\nurl_path = \"/x\"\nstatic_body = \"\"\n".to_string(),
            vec![":3:10:", "applications[0].method", "bad method \"FETCH\""],
        ),
        (
            "listen_address = \"127.0.0.1:0\"\n[[applications]]\nmethod = \"GET\"\nurl_path = \"x\"\nstatic_body = \"\"\n".to_string(),
            vec![":4:12:", "applications[0].url_path", "must start with '/'"],
        ),
        (
            format!("{}[[applications]]\nmethod = \"GET\"\nurl_path = \"/x\"\nstatic_body = \"b\"\n", route("static_body = \"a\"")),
            vec![":9:12:", "applications[1].url_path", "duplicate route GET /x", "line 4"],
        ),
        (route("file_path = \"nowhere.wasm\""), vec![":6:13:", "applications[0].file_path", "not found; tried"]),
        (route("file_path = \"{guests}/../guests/README-not-wasm.txt\""), vec!["not found"]),
        (route("file_path = \"{samples}/config.toml\""), vec![":6:13:", "neither a wasm binary nor valid WAT"]),
        (route("file_path = \"{samples}/env.wat\"\nfunction = \"nope\""), vec![":6:13:", "no exported function \"nope\"", "\"handle\""]),
        (route("file_path = \"{guests}/unknown_import.wat\""), vec![":6:13:", "route GET /x", "imports env.launch_missiles, which the host does not provide"]),
        (
            route("file_path = \"{guests}/wrong_signature.wat\""),
            vec!["imports env.log with signature (i32, i32) -> ()", "the host provides (i32, i64) -> ()"],
        ),
        (route("file_path = \"{guests}/wrong_entry.wat\""), vec!["export \"handle\" has signature (i32) -> ()"]),
        (route("file_path = \"{guests}/bigbody.wat\"\nmemory_limit = \"1MiB\""), vec!["memory starts at 5184 KiB", "memory_limit of 1024 KiB"]),
        (route("file_path = \"{samples}/env.wat\"\ninstance = \"shared\""), vec![":7:12:", "applications[0].instance", "\"fresh\" or \"reuse\""]),
        (route("file_path = \"{samples}/env.wat\"\nfuel = 0"), vec![":7:8:", "applications[0].fuel", "out of range"]),
        (
            "listen_address = \"127.0.0.1:0\"\n[server]\ncompile_cache_dir = \"\"\n".to_string(),
            vec![":3:21:", "server.compile_cache_dir", "the path is empty"],
        ),
        (route("static_body = \"x\"\nfuel = 5"), vec!["applies to wasm routes"]),
        (route("file_path = \"{samples}/env.wat\"\nallowed_outbound = [\"*:80\"]"), vec!["applications[0].allowed_outbound", "wildcards are not supported"]),
        ("listen_address = \"not an address\"\n".to_string(), vec![":1:18:", "listen_address"]),
        ("listen_address = \"127.0.0.1:0\"\n[server]\nshards = 0\n".to_string(), vec![":3:10:", "server.shards"]),
        ("[server]\nshards = 1\n".to_string(), vec!["missing field `listen_address`"]),
    ];
    for (config, expected) in cases {
        let (ok, output) = check(&config);
        assert!(!ok, "accepted:\n{config}\n{output}");
        for piece in expected {
            assert!(
                output.contains(piece),
                "expected {piece:?} in the error for:\n{config}\ngot:\n{output}"
            );
        }
        assert!(output.contains("config.toml"), "error must name the file: {output}");
    }
}
