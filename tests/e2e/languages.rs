//! The same tasks written in Rust, C, JavaScript and Python, driven by a
//! stock Celery client through one worker: identical answers.

use serde_json::json;

use crate::util::{plugin_folder, run_python, RedisServer, Worker};

#[test]
fn every_language_gives_the_same_results() {
    let languages = ["math", "cmath", "jsmath", "pymath"];
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["math", "faults", "cmath", "jsmath", "pymath"]);
    let _worker = Worker::start(plugins.path(), &redis.url(0), &["--result-backend", &redis.url(1)]);
    let seen = run_python("celery_client.py", &["languages", &redis.url(0), &redis.url(1), &languages.join(",")]);
    for plugin in languages {
        let got = &seen[plugin];
        assert_eq!(got["add"], json!(5), "{plugin}");
        assert_eq!(got["add_kwargs"], json!(42), "{plugin}");
        assert_eq!(got["mul"], json!(42), "{plugin}");
        assert_eq!(got["xsum"].as_f64(), Some(7.0), "{plugin}");
        assert_eq!(got["fail"]["args"], json!(["boom"]), "{plugin}: {}", got["fail"]);
        assert!(matches!(got["fail"]["type"].as_str(), Some("Exception" | "Error")), "{plugin}: {}", got["fail"]);
        assert_eq!(got["arity"]["type"], json!("TypeError"), "{plugin}");
        assert_eq!(got["arity"]["args"], json!(["add: expected 2 arguments (x, y), got 3"]), "{plugin}");
    }
}
