//! Scaled FP8 SafeTensors (`--quant fp8`) against torch: every 2-D weight and its `weight_scale` equal what
//! torch computes from the same seeded input with the FP8 e4m3fn formulas of convert-to-quant (amax from the
//! statistics pass over the tensor, each row or each tile), bf16 and f32 sources, from one file and from a
//! sharded directory; the other tensors unchanged.

mod common;
use common::*;

fn oracle(py: &std::path::Path, args: &[&dyn AsRef<std::ffi::OsStr>]) {
    run_oracle(py, "scaled_oracle.py", args);
}

#[test]
fn fp8_weights_and_scales_equal_torch_for_every_granularity() {
    let Some(py) = python() else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let seed = std::process::id() % 1000;
    for dtype in ["bf16", "f32"] {
        let src = d.path().join(format!("{dtype}.safetensors"));
        oracle(&py, &[&"make", &src, &seed.to_string(), &dtype]);
        for (scaling, block) in [("tensor", 128), ("row", 128), ("block", 64), ("block", 128)] {
            let out = d
                .path()
                .join(format!("{dtype}-{scaling}-{block}.safetensors"));
            let mut cmd = lbrx();
            cmd.arg("convert").arg(&src).arg(&out).args([
                "--quant",
                "fp8",
                "--scaling",
                scaling,
                "--quiet",
            ]);
            if scaling == "block" {
                cmd.args(["--block-size", &block.to_string()]);
            }
            ok(&mut cmd);
            oracle(&py, &[&"check", &src, &out, &scaling, &block.to_string()]);
        }
    }
}

#[test]
fn fp8_refuses_gguf_and_stray_flags() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("m.safetensors");
    write_big(&src, 1, 4096);
    for (dst, extra) in [
        ("o.gguf", &[][..]),
        ("o.safetensors", &["--scaling", "column"][..]),
        ("o.safetensors", &["--block-size", "64"][..]),
    ] {
        let out = lbrx()
            .arg("convert")
            .arg(&src)
            .arg(d.path().join(dst))
            .args(["--quant", "fp8"])
            .args(extra)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{dst} {extra:?} was accepted");
    }
    let out = lbrx()
        .arg("convert")
        .arg(&src)
        .arg(d.path().join("o.safetensors"))
        .args(["--scaling", "row"])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "--scaling without --quant fp8 was accepted"
    );
}
