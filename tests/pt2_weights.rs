//! The pickled-weight containers (torch 2.7's legacy zip and torch 2.8's PT2 archive with a
//! `torch.save` state dict) give exactly the tensors torch 2.15 wrote as raw storages for the
//! same model (fixtures/pt2/<case>/: `model_torch27.pt2`, `model_torch28.pt2`, `model.pt2`).

use mlpack::frontend::torch::archive::{self, Container};
use std::path::Path;

#[test]
fn pickled_weights_equal_the_raw_weights_of_the_same_model() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pt2");
    let mut compared = 0;
    for case in ["cnn", "bert", "buffer", "inf_mask"] {
        let raw = archive::open(&dir.join(case).join("model.pt2")).unwrap();
        assert_eq!(raw.container, Container::ArchiveRaw);
        for (file, container) in [
            ("model_torch27.pt2", Container::Legacy),
            ("model_torch27_aten.pt2", Container::Legacy),
            ("model_torch28.pt2", Container::ArchivePickled),
            ("model_torch28_aten.pt2", Container::ArchivePickled),
        ] {
            let path = dir.join(case).join(file);
            if !path.exists() {
                continue;
            }
            let pickled = archive::open(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(pickled.container, container, "{case}/{file}");
            let mut names: Vec<_> = pickled.tensors.keys().collect();
            names.sort();
            let mut raw_names: Vec<_> = raw.tensors.keys().collect();
            raw_names.sort();
            assert_eq!(names, raw_names, "{case}/{file}");
            for (name, tensor) in &pickled.tensors {
                let want = &raw.tensors[name];
                assert_eq!(tensor.dtype(), want.dtype(), "{case}/{file}: {name}");
                assert_eq!(tensor.shape(), want.shape(), "{case}/{file}: {name}");
                assert_eq!(tensor.bytes(), want.bytes(), "{case}/{file}: {name}");
            }
            compared += 1;
        }
    }
    assert!(compared >= 5, "only {compared} pickled archives found");
}
