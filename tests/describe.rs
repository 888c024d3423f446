//! The model-description features of `convert`: an image-input classifier with labels and
//! metadata, converted from the `classifier/tiny_image` fixture. Its outputs on the committed
//! PNG (and JPEG) are checked against ONNX Runtime's on the same pixels after the same scale
//! and bias; its description is checked by coremltools 9.0 afterwards (each package here has a
//! `.description.json` sidecar that `scripts/coreml_check.py` compares with what coremltools
//! parses), and it survives compression and re-targeting.

mod common;

use common::cli::{fails_with, mlpack, stderr, text};
use common::fixtures::Fixture;
use common::packages::package_dir;
use mlpack::ir::{ColorLayout, DType};
use std::path::{Path, PathBuf};

const SCALE: &str = "0.0078125";
const BIAS: &str = "-1,-0.875,-1.125";
const LABELS: [&str; 5] = ["apple", "banana", "cherry", "date", "elderberry"];

fn fixture() -> Fixture {
    Fixture::load("classifier", "tiny_image")
}

fn case_file(name: &str) -> PathBuf {
    fixture().committed_model_path().with_file_name(name)
}

fn npy(path: &Path) -> Vec<f32> {
    let value = mlpack::npy::parse(&std::fs::read(path).unwrap()).unwrap();
    value.to_f32_array().unwrap().iter().copied().collect()
}

/// Converts the fixture with every description flag into `dir/NAME.mlpackage` (fp16 unless
/// `fp32`), and writes the sidecar coremltools checks.
fn convert(dir: &Path, name: &str, layout: &str, extra: &[&str]) -> PathBuf {
    let out = dir.join(format!("{name}.mlpackage"));
    let model = fixture().model_path();
    let labels = case_file("labels.txt");
    let image = format!("image={layout}");
    let bias = format!("--image-bias={BIAS}");
    let mut args = vec![
        "convert",
        model.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--image-input",
        &image,
        "--image-scale",
        SCALE,
        &bias,
        "--class-labels",
        labels.to_str().unwrap(),
        "--author",
        "Ann Example",
        "--license",
        "MIT",
        "--description",
        "Tells five fruits apart",
        "--version-string",
        "1.2.3",
        "--meta",
        "team=vision",
        "--meta",
        "dataset=synthetic",
        "--input-description",
        "image=A 16x12 picture",
        "--output-description",
        "classLabel=The fruit",
    ];
    args.extend_from_slice(extra);
    let o = mlpack(&args);
    assert!(o.status.success(), "{}", text(&o));
    write_expected_description(&out, layout);
    out
}

/// The `.description.json` sidecar of `package`: the description fields the flags set.
fn write_expected_description(package: &Path, layout: &str) {
    let expected = serde_json::json!({
        "description": {
            "input": [{
                "name": "image",
                "shortDescription": "A 16x12 picture",
                "type": {"imageType": {"width": "16", "height": "12", "colorSpace": layout}},
            }],
            "output": [
                {"name": "classLabel", "shortDescription": "The fruit", "type": {"stringType": {}}},
                {"name": "classLabel_probs", "type": {"dictionaryType": {"stringKeyType": {}}}},
            ],
            "predictedFeatureName": "classLabel",
            "predictedProbabilitiesName": "classLabel_probs",
            "metadata": {
                "author": "Ann Example",
                "license": "MIT",
                "shortDescription": "Tells five fruits apart",
                "versionString": "1.2.3",
                "userDefined": {"team": "vision", "dataset": "synthetic"},
            },
        },
        "class_labels": LABELS,
    });
    let sidecar = package.with_extension("description.json");
    std::fs::write(sidecar, serde_json::to_string_pretty(&expected).unwrap()).unwrap();
}

/// Runs `package` on `image`; returns the label and the probabilities in class order.
fn run(package: &Path, image: &Path, out: &Path) -> (String, Vec<f64>) {
    let input = format!("image={}", image.display());
    let o = mlpack(&[
        "run",
        package.to_str().unwrap(),
        "--input",
        &input,
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let label: String =
        serde_json::from_slice(&std::fs::read(out.join("classLabel.json")).unwrap()).unwrap();
    let probs: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&std::fs::read(out.join("classLabel_probs.json")).unwrap()).unwrap();
    let probs = LABELS
        .iter()
        .map(|l| probs[*l].as_f64().expect("a probability per label"))
        .collect();
    (label, probs)
}

/// The label and probabilities agree with ONNX Runtime's probabilities `reference`.
fn assert_matches(got: &(String, Vec<f64>), reference: &[f32], tol: f64) {
    let best = (0..reference.len())
        .max_by(|&a, &b| reference[a].total_cmp(&reference[b]))
        .unwrap();
    assert_eq!(got.0, LABELS[best], "{got:?} vs {reference:?}");
    for (g, r) in got.1.iter().zip(reference) {
        assert!((g - *r as f64).abs() <= tol, "{got:?} vs {reference:?}");
    }
}

#[test]
fn image_classifier_runs_on_the_committed_png_and_jpeg_like_onnx_runtime() {
    let dir = package_dir("describe_classifier");
    let fx = fixture();
    let reference = npy(&fx.output_files()[0].1);
    let jpeg_reference = npy(&case_file("jpeg/output_0.npy"));
    for (name, extra, tol) in [
        ("fp16", &[][..], 2e-3),
        ("fp32", &["--precision", "fp32"][..], 1e-5),
    ] {
        let package = convert(&dir, name, "RGB", extra);
        let got = run(
            &package,
            &case_file("image.png"),
            &dir.join(format!("{name}-png")),
        );
        assert_matches(&got, &reference, tol);
        // The JPEG decoders differ slightly (ONNX Runtime's input came from Pillow's).
        let got = run(
            &package,
            &case_file("image.jpg"),
            &dir.join(format!("{name}-jpg")),
        );
        assert_matches(&got, &jpeg_reference, 2e-2);
    }
}

#[test]
fn description_round_trips_through_the_reader_compression_and_retargeting() {
    let dir = package_dir("describe_round_trip");
    let package = convert(&dir, "bgr", "BGR", &[]);
    let program = mlpack::backend::read_package(&package).unwrap();
    let d = &program.description;
    assert_eq!(d.images.get("image"), Some(&ColorLayout::Bgr));
    assert_eq!(
        (
            d.author.as_str(),
            d.license.as_str(),
            d.version_string.as_str()
        ),
        ("Ann Example", "MIT", "1.2.3")
    );
    assert_eq!(d.short_description, "Tells five fruits apart");
    assert_eq!(d.features["image"], "A 16x12 picture");
    assert_eq!(program.metadata["team"], "vision");
    let classifier = d.classifier.as_ref().expect("a classifier");
    let op = classifier.op(program.main()).expect("its classify op");
    // fp16 probabilities are cast to fp32 first, as coremltools does.
    let probabilities = op.input("probabilities").unwrap()[0].var().unwrap();
    assert_eq!(
        program.main().var_type(probabilities).unwrap().dtype,
        DType::F32
    );
    let (scale, bias) = mlpack::ir::image_preprocessing(program.main(), "image");
    assert_eq!((scale, bias), (0.0078125, vec![-1.0, -0.875, -1.125]));

    let rewritten = [
        ("palettized", vec!["palettize", "--nbits", "4"]),
        ("quantized", vec!["quantize"]),
        (
            "retargeted",
            vec!["convert", "--target", "iOS16", "--precision", "fp32"],
        ),
    ];
    for (name, args) in rewritten {
        let out = dir.join(format!("{name}.mlpackage"));
        let mut all = vec![
            args[0],
            package.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ];
        all.extend_from_slice(&args[1..]);
        let o = mlpack(&all);
        assert!(o.status.success(), "{name}: {}", text(&o));
        let again = mlpack::backend::read_package(&out).unwrap();
        assert_eq!(again.description, program.description, "{name}");
        assert_eq!(again.metadata["team"], "vision", "{name}");
        write_expected_description(&out, "BGR");
    }
}

#[test]
fn inspect_shows_the_description() {
    let dir = package_dir("describe_inspect");
    let package = convert(&dir, "rgb", "RGB", &[]);
    let o = mlpack(&["inspect", package.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let shown = text(&o);
    for needle in [
        "image input: image (RGB), pixels * 0.0078125 + [-1, -0.875, -1.125]",
        "classifier: 5 classes (apple, banana, cherry, date, elderberry); label output \
         classLabel, probabilities output classLabel_probs",
        "author: Ann Example",
        "license: MIT",
        "description: Tells five fruits apart",
        "version: 1.2.3",
        "feature image: A 16x12 picture",
        "team = vision",
    ] {
        assert!(shown.contains(needle), "'{needle}' not in:\n{shown}");
    }
    let o = mlpack(&["inspect", package.to_str().unwrap(), "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let d = &json["description"];
    assert_eq!(d["images"][0]["layout"], "RGB");
    assert_eq!(d["classifier"]["classes"], 5);
    assert_eq!(d["author"], "Ann Example");
}

#[test]
fn bad_description_flags_are_one_line_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let model = fixture().model_path();
    let model = model.to_str().unwrap();
    let out = dir.path().join("x.mlpackage");
    let out = out.to_str().unwrap();
    let labels = case_file("labels.txt");
    let labels = labels.to_str().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let four = write("four.txt", "a\nb\nc\nd\n");
    let twice = write("twice.json", r#"["a", "b", "a", "c", "d"]"#);
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["--image-input", "picture"],
            vec!["--image-input picture", "no such input", "image"],
        ),
        (
            vec!["--image-input", "image=GRAY"],
            vec!["--image-input image", "[1, 1, H, W]", "fp32 [1, 3, 12, 16]"],
        ),
        (
            vec!["--image-input", "image=CMYK"],
            vec!["--image-input", "not RGB, BGR or GRAY"],
        ),
        (
            vec!["--image-scale", "2"],
            vec!["--image-scale", "needs --image-input"],
        ),
        (
            vec!["--image-input", "image", "--image-bias=1,2"],
            vec!["--image-bias", "1 or 3"],
        ),
        (
            vec!["--class-labels", &four],
            vec!["--class-labels", "4 labels", "'probs'"],
        ),
        (
            vec!["--class-labels", &twice],
            vec!["--class-labels", "'a' is listed twice"],
        ),
        (
            vec!["--class-labels", labels, "--output-description", "probs=x"],
            vec!["--output-description probs", "no such output", "classLabel"],
        ),
        (
            vec!["--input-description", "picture=x"],
            vec!["--input-description picture", "no such input"],
        ),
        (vec!["--meta", "novalue"], vec!["--meta", "NAME=VALUE"]),
    ];
    for (flags, needles) in cases {
        let mut args = vec!["convert", model, "-o", out];
        args.extend_from_slice(&flags);
        fails_with(&args, 2, &needles);
        assert!(!Path::new(out).exists(), "{flags:?} wrote a package");
    }
}

#[test]
fn run_refuses_images_of_another_size_and_images_for_tensor_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let package = convert(dir.path(), "c", "RGB", &[]);
    let png = dir.path().join("big.png");
    image_of_size(&png, 20, 10);
    let input = format!("image={}", png.display());
    let out = dir.path().join("out");
    let line = fails_with(
        &[
            "run",
            package.to_str().unwrap(),
            "--input",
            &input,
            "-o",
            out.to_str().unwrap(),
        ],
        2,
        &[
            "--input image=",
            "the image is 20x10",
            "16x12",
            "does not resize",
        ],
    );
    assert!(!line.is_empty());
    // A plain (tensor-input) package takes no image files.
    let plain = dir.path().join("plain.mlpackage");
    let model = fixture().model_path();
    let o = mlpack(&[
        "convert",
        model.to_str().unwrap(),
        "-o",
        plain.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let input = format!("image={}", case_file("image.png").display());
    fails_with(
        &[
            "run",
            plain.to_str().unwrap(),
            "--input",
            &input,
            "-o",
            out.to_str().unwrap(),
        ],
        2,
        &["'image' is not an image input"],
    );
}

/// Writes a PNG of `w`x`h` gray pixels.
fn image_of_size(path: &Path, w: u32, h: u32) {
    // A valid PNG through the same crate the reader uses is the simplest source.
    let img = image::RgbImage::from_pixel(w, h, image::Rgb([90, 90, 90]));
    img.save(path).unwrap();
}
