//! The operator's helpers of the real binary: shell completions that the
//! shells accept and that complete farmgate's subcommands, and the man page.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/process.rs"]
mod process;

use process::bin;
use std::process::Command;

fn farmgate(args: &[&str]) -> String {
    let out = Command::new(bin()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "farmgate {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

const SUBCOMMANDS: [&str; 6] = ["run", "check", "demo", "gen-certs", "completions", "man"];

#[test]
fn bash_completion_completes_subcommands_and_options() {
    let script = farmgate(&["completions", "bash"]);
    let dir = common::fresh_temp_dir("farmgate-completion");
    let path = dir.join("farmgate.bash");
    std::fs::write(&path, &script).unwrap();
    // Load the script into a real bash and ask it what `farmgate ch<TAB>`
    // and `farmgate check --<TAB>` offer.
    let ask = |line: &str| -> Vec<String> {
        let words: Vec<&str> = line.split(' ').collect();
        let cmd = format!(
            "source {}; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}; \
             _farmgate farmgate '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            path.display(),
            words.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" "),
            words.len() - 1,
            words[words.len() - 1],
            words[words.len() - 2],
        );
        let out = Command::new("bash").args(["-c", &cmd]).output().unwrap();
        assert!(
            out.status.success(),
            "bash: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(ask("farmgate ch"), ["check"]);
    let all = ask("farmgate ");
    for sub in SUBCOMMANDS {
        assert!(all.iter().any(|w| w == sub), "{sub} not offered: {all:?}");
    }
    let opts = ask("farmgate check --");
    assert!(opts.iter().any(|w| w == "--config"), "{opts:?}");
    let shells = ask("farmgate completions ");
    for shell in ["bash", "zsh", "fish"] {
        assert!(shells.iter().any(|w| w == shell), "{shells:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn zsh_and_fish_scripts_name_every_subcommand() {
    let zsh = farmgate(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef farmgate"), "{}", &zsh[..40]);
    let fish = farmgate(&["completions", "fish"]);
    for sub in SUBCOMMANDS {
        assert!(zsh.contains(&format!("'{sub}:")), "zsh lacks {sub}");
        assert!(
            fish.contains(&format!("-a \"{sub}\"")),
            "fish lacks {sub}:\n{fish}"
        );
    }
    let bad = Command::new(bin())
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(
        bad.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

#[test]
fn man_page_renders_with_every_subcommand_and_the_signals() {
    let page = farmgate(&["man"]);
    assert!(
        page.starts_with(".ie") || page.contains(".TH farmgate 1"),
        "{}",
        &page[..80]
    );
    let man = "/usr/bin/man";
    assert!(
        std::path::Path::new(man).exists(),
        "{man} is missing: apt-get install -y man-db (scripts/test.sh installs it)"
    );
    let dir = common::fresh_temp_dir("farmgate-man");
    let path = dir.join("farmgate.1");
    std::fs::write(&path, &page).unwrap();
    let out = Command::new(man)
        .args(["-l", "-P", "cat"])
        .arg(&path)
        .env("MANWIDTH", "100")
        .env("MAN_KEEP_FORMATTING", "0")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    // Strip overstrike bold/underline (x\bx, _\bx) that man emits.
    let text = regex::Regex::new(".\x08").unwrap().replace_all(&text, "");
    for sub in SUBCOMMANDS {
        assert!(
            text.contains(&format!("farmgate {sub}")),
            "the page lacks farmgate {sub}:\n{text}"
        );
    }
    for want in ["--config", "SIGNALS", "USR1", "/etc/farmgate/farmgate.yaml"] {
        assert!(text.contains(want), "the page lacks {want}:\n{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
