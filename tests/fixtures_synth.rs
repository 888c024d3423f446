//! Checks the fixture support code: the synthetic weight generator agrees with published
//! reference values and with what `fixtures/make_fixtures.py` recorded, every fixture's files
//! exist, and materialisation is idempotent, self-repairing and safe under concurrency.

mod common;

use common::fixtures::{fnv1a64, splitmix64, synth_values, Fixture};

#[test]
fn fnv1a64_matches_published_vectors() {
    assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
}

#[test]
fn splitmix64_matches_reference_outputs() {
    // The reference SplitMix64 (Vigna) seeded with 1234567 yields these first outputs.
    let got: Vec<u64> = (1..=5).map(|i| splitmix64(1_234_567, i)).collect();
    assert_eq!(
        got,
        [
            6457827717110365317,
            3203168211198807973,
            9817491932198370423,
            4593380528125082431,
            16408922859458223821
        ]
    );
    assert_eq!(splitmix64(0, 1), 0xe220_a839_7b1d_cdaf);
}

#[test]
fn synth_values_match_python_bits() {
    // Bit patterns printed by make_fixtures.synth_values (numpy float32).
    let conv = synth_values("conv1.weight", 4, -0.5, 0.25);
    let bits: Vec<u32> = conv.iter().map(|v| v.to_bits()).collect();
    assert_eq!(bits, [0xbdba_c3d0, 0x3d71_2300, 0xbef7_32b5, 0x3d55_9980]);
    let fc = synth_values("fc.weight", 3, 0.0, 1.0);
    let bits: Vec<u32> = fc.iter().map(|v| v.to_bits()).collect();
    assert_eq!(bits, [0x3ef8_237e, 0x3f5f_4d10, 0x3f3e_57a7]);
}

#[test]
fn synth_values_stay_in_range() {
    let values = synth_values("range", 10_000, -2.0, 3.0);
    assert!(values.iter().all(|&v| (-2.0..3.0).contains(&v)));
    let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / values.len() as f64;
    assert!((mean - 0.5).abs() < 0.05, "mean {mean}");
}

#[test]
fn every_fixture_has_its_files() {
    let mut count = 0;
    for group in ["models", "ops", "bad"] {
        for fixture in Fixture::all(group) {
            count += 1;
            assert!(
                fixture.committed_model_path().is_file(),
                "{}",
                fixture.name()
            );
            for (name, path) in fixture
                .input_files()
                .into_iter()
                .chain(fixture.output_files())
            {
                assert!(
                    path.is_file(),
                    "{}: missing {} for {name}",
                    fixture.name(),
                    path.display()
                );
            }
            if group == "bad" {
                assert!(fixture.meta.expected_error.is_some(), "{}", fixture.name());
            } else {
                assert!(!fixture.meta.outputs.is_empty(), "{}", fixture.name());
            }
        }
    }
    assert!(count > 50, "only {count} fixtures found");
}

#[test]
fn every_synthetic_fixture_materialises_and_matches_python() {
    let synthetic: Vec<Fixture> = Fixture::all("models")
        .into_iter()
        .filter(|f| f.meta.synthetic_weights.is_some())
        .collect();
    assert!(synthetic.len() >= 6, "expected the torchvision cases");
    for fixture in synthetic {
        // model_path() generates and checks each tensor against synth.json (panicking on a
        // mismatch); check the result once more from the file itself.
        let model = fixture.model_path();
        let spec = fixture.synth_spec(fixture.meta.synthetic_weights.as_deref().unwrap_or(""));
        let blob = std::fs::read(model.with_file_name(&spec.file)).expect("weights written");
        assert_eq!(blob.len() as u64, spec.total_length, "{}", fixture.name());
        for tensor in &spec.tensors {
            let start = tensor.offset as usize;
            let values: Vec<f32> = blob[start..start + tensor.length as usize]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            common::fixtures::check_tensor(tensor, &values)
                .unwrap_or_else(|e| panic!("{}: {e}", fixture.name()));
        }
        assert_eq!(
            std::fs::read(&model).expect("model copied"),
            std::fs::read(fixture.committed_model_path()).expect("committed model")
        );
    }
}

#[test]
fn non_synthetic_fixtures_use_the_committed_model() {
    let fixture = Fixture::load("models", "mlp_op13");
    assert_eq!(fixture.model_path(), fixture.dir.join("model.onnx"));
    assert_eq!(fixture.meta.inputs[0].shape, [2, 16]);
    let dynamic = Fixture::load("models", "small_cnn_dynamic");
    assert_eq!(dynamic.meta.input_shape_flags, ["x=1,3,16,16"]);
}

fn smallest_synthetic() -> Fixture {
    Fixture::all("models")
        .into_iter()
        .filter_map(|f| {
            let file = f.meta.synthetic_weights.clone()?;
            Some((f.synth_spec(&file).total_length, f))
        })
        .min_by_key(|(len, _)| *len)
        .map(|(_, f)| f)
        .expect("a synthetic fixture")
}

#[test]
fn stale_or_truncated_weights_are_regenerated() {
    let fixture = smallest_synthetic();
    let root = tempfile::tempdir().expect("tempdir");
    let model = fixture.model_path_in(root.path());
    let spec = fixture.synth_spec(fixture.meta.synthetic_weights.as_deref().unwrap_or(""));
    let weights = model.with_file_name(&spec.file);
    let good = std::fs::read(&weights).expect("weights");

    std::fs::write(&weights, &good[..good.len() / 2]).expect("truncate");
    fixture.model_path_in(root.path());
    assert!(
        std::fs::read(&weights).expect("weights") == good,
        "truncated file not repaired"
    );

    let mut stale = good.clone();
    let first = spec.tensors[0].offset as usize;
    stale[first..first + 4].copy_from_slice(&1.5f32.to_le_bytes());
    std::fs::write(&weights, &stale).expect("corrupt");
    fixture.model_path_in(root.path());
    assert!(
        std::fs::read(&weights).expect("weights") == good,
        "stale file not repaired"
    );
}

#[test]
fn concurrent_materialisation_is_safe() {
    let fixture = smallest_synthetic();
    let root = tempfile::tempdir().expect("tempdir");
    let paths: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..3)
            .map(|_| scope.spawn(|| fixture.model_path_in(root.path())))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert!(paths.windows(2).all(|w| w[0] == w[1]));
    let leftovers: Vec<_> = std::fs::read_dir(paths[0].parent().expect("dir"))
        .expect("list")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp."))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind");
}
