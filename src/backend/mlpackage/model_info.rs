//! The parts of the model description that [`ir::Description`](crate::ir::Description)
//! carries: image inputs (`imageType`), the classifier outputs (a label feature and a
//! probabilities dictionary, named by `predictedFeatureName` and `predictedProbabilitiesName`)
//! and the human-readable metadata. Facts and sources: `docs/describe.md`.

use crate::ir::{Classifier, ColorLayout, DType, Description, Dim, Function, ShapeSet, Var};
use crate::proto::coreml::{
    dictionary_feature_type::KeyType,
    feature_type,
    image_feature_type::{
        ColorSpace, EnumeratedImageSizes, ImageSize, ImageSizeRange, SizeFlexibility,
    },
    DictionaryFeatureType, FeatureDescription, FeatureType, ImageFeatureType, Int64FeatureType,
    Metadata, ModelDescription, SizeRange, StringFeatureType,
};
use std::collections::BTreeMap;

/// The `imageType` feature of image input `var` (`[1, C, H, W]` fp32, checked by the
/// pipeline that marks it): width and height from the shape, or from `set`'s default with
/// its sizes as the image's size flexibility.
pub fn image_feature(
    var: &Var,
    layout: ColorLayout,
    set: Option<&ShapeSet>,
) -> Result<FeatureType, String> {
    let sizes = |shape: &[usize]| (shape[3] as i64, shape[2] as i64);
    let bad = || {
        format!(
            "image input '{}' is {}; an image is fp32 [1, {}, H, W]",
            var.name,
            var.ty,
            layout.channels()
        )
    };
    if var.ty.dtype != DType::F32
        || var.ty.rank() != 4
        || var.ty.shape[0] != Dim::Fixed(1)
        || var.ty.shape[1] != Dim::Fixed(layout.channels())
    {
        return Err(bad());
    }
    let (width, height, size_flexibility) = match (var.ty.static_shape(), set) {
        (Some(shape), _) => {
            let (w, h) = sizes(&shape);
            (w, h, None)
        }
        (None, Some(set)) => {
            let (w, h) = sizes(&set.default_shape());
            (w, h, Some(image_sizes(set)))
        }
        (None, None) => return Err(bad()),
    };
    Ok(FeatureType {
        is_optional: false,
        r#type: Some(feature_type::Type::ImageType(ImageFeatureType {
            width,
            height,
            color_space: color_space(layout) as i32,
            size_flexibility,
        })),
    })
}

/// Core ML's image size flexibility for the accepted shapes of an NCHW input.
fn image_sizes(set: &ShapeSet) -> SizeFlexibility {
    match set {
        ShapeSet::Ranges(ranges) => {
            let range = |(lo, hi): (usize, Option<usize>)| SizeRange {
                lower_bound: lo as u64,
                upper_bound: hi.map_or(-1, |hi| hi as i64),
            };
            SizeFlexibility::ImageSizeRange(ImageSizeRange {
                width_range: Some(range(ranges[3])),
                height_range: Some(range(ranges[2])),
            })
        }
        ShapeSet::Enumerated(shapes) => SizeFlexibility::EnumeratedSizes(EnumeratedImageSizes {
            sizes: shapes
                .iter()
                .map(|s| ImageSize {
                    width: s[3] as u64,
                    height: s[2] as u64,
                })
                .collect(),
        }),
    }
}

/// The color space of `layout`.
fn color_space(layout: ColorLayout) -> ColorSpace {
    match layout {
        ColorLayout::Rgb => ColorSpace::Rgb,
        ColorLayout::Bgr => ColorSpace::Bgr,
        ColorLayout::Gray => ColorSpace::Grayscale,
    }
}

/// The feature of output `var` when it is one of `classifier`'s: the label as a string (or
/// int64) feature, the probabilities as a dictionary keyed by the same type.
pub fn classifier_feature(
    var: &Var,
    classifier: Option<&Classifier>,
    function: &Function,
) -> Option<FeatureType> {
    let classifier = classifier?;
    let key = classifier.op(function)?.outputs[0].ty.dtype;
    let r#type = if var.name == classifier.label {
        match key {
            DType::I64 => feature_type::Type::Int64Type(Int64FeatureType {}),
            _ => feature_type::Type::StringType(StringFeatureType {}),
        }
    } else if var.name == classifier.probabilities {
        feature_type::Type::DictionaryType(DictionaryFeatureType {
            key_type: Some(match key {
                DType::I64 => KeyType::Int64KeyType(Int64FeatureType {}),
                _ => KeyType::StringKeyType(StringFeatureType {}),
            }),
        })
    } else {
        return None;
    };
    Some(FeatureType {
        is_optional: false,
        r#type: Some(r#type),
    })
}

/// Fills the description-level fields: classifier names, metadata and the features' short
/// descriptions.
pub fn annotate(d: &mut ModelDescription, description: &Description) {
    if let Some(c) = &description.classifier {
        d.predicted_feature_name = c.label.clone();
        d.predicted_probabilities_name = c.probabilities.clone();
    }
    let metadata = d.metadata.get_or_insert_with(Metadata::default);
    metadata.author = description.author.clone();
    metadata.license = description.license.clone();
    metadata.short_description = description.short_description.clone();
    metadata.version_string = description.version_string.clone();
    for f in d.input.iter_mut().chain(d.output.iter_mut()) {
        if let Some(text) = description.features.get(&f.name) {
            f.short_description = text.clone();
        }
    }
}

/// The color layout and accepted shapes of image feature `image` for program input `var`,
/// which must be fp32 `[1, C, H, W]` with the layout's channel count and, when fixed, the
/// feature's size.
pub fn read_image(
    image: &ImageFeatureType,
    var: &Var,
) -> Result<(ColorLayout, Option<ShapeSet>), String> {
    let layout = match ColorSpace::try_from(image.color_space) {
        Ok(ColorSpace::Rgb) => ColorLayout::Rgb,
        Ok(ColorSpace::Bgr) => ColorLayout::Bgr,
        Ok(ColorSpace::Grayscale) => ColorLayout::Gray,
        Ok(other) => {
            return Err(format!(
                "image input '{}' has color space {}, which mlpack does not support",
                var.name,
                other.as_str_name()
            ))
        }
        Err(_) => {
            return Err(format!(
                "image input '{}' has unknown color space {}",
                var.name, image.color_space
            ))
        }
    };
    let size = |n: i64| usize::try_from(n).ok().filter(|&n| n > 0);
    let (Some(w), Some(h)) = (size(image.width), size(image.height)) else {
        return Err(format!(
            "image input '{}' has size {}x{}",
            var.name, image.width, image.height
        ));
    };
    let c = layout.channels();
    let set = match &image.size_flexibility {
        None => None,
        Some(SizeFlexibility::ImageSizeRange(r)) => {
            let range = |r: Option<&SizeRange>| -> Result<(usize, Option<usize>), String> {
                let r = r.ok_or("a size range is missing")?;
                let lo = size(r.lower_bound as i64).ok_or("a lower bound is 0")?;
                match r.upper_bound {
                    hi if hi < 0 => Ok((lo, None)),
                    hi => match size(hi) {
                        Some(hi) if hi >= lo => Ok((lo, Some(hi))),
                        _ => Err(format!("range {lo}..{hi} is empty")),
                    },
                }
            };
            let both = range(r.height_range.as_ref())
                .and_then(|h| Ok((h, range(r.width_range.as_ref())?)))
                .map_err(|m| format!("image input '{}': {m}", var.name))?;
            Some(ShapeSet::Ranges(vec![
                (1, Some(1)),
                (c, Some(c)),
                both.0,
                both.1,
            ]))
        }
        Some(SizeFlexibility::EnumeratedSizes(e)) if !e.sizes.is_empty() => {
            Some(ShapeSet::Enumerated(
                e.sizes
                    .iter()
                    .map(|s| vec![1, c, s.height as usize, s.width as usize])
                    .collect(),
            ))
        }
        Some(SizeFlexibility::EnumeratedSizes(_)) => {
            return Err(format!(
                "image input '{}' has an empty list of sizes",
                var.name
            ))
        }
    };
    let fixed = [1, c, h, w];
    let fits = var.ty.dtype == DType::F32
        && var.ty.rank() == 4
        && var
            .ty
            .shape
            .iter()
            .zip(fixed)
            .enumerate()
            .all(|(i, (d, n))| match d {
                Dim::Fixed(m) => *m == n || (set.is_some() && i >= 2),
                Dim::Symbol(_) => set.is_some() && i >= 2,
            });
    if !fits {
        return Err(format!(
            "image input '{}' ({}, {w}x{h}) does not match its program type {}",
            var.name, layout, var.ty
        ));
    }
    Ok((layout, set))
}

/// True when `feature` is typed as a classifier output (a string, int64 or dictionary
/// feature) and `var` as the matching IR value (a scalar label, an fp64 vector).
pub fn is_classifier_output(feature: &FeatureType, var: &Var) -> bool {
    match &feature.r#type {
        Some(feature_type::Type::StringType(_)) => {
            var.ty.rank() == 0 && var.ty.dtype == DType::String
        }
        Some(feature_type::Type::Int64Type(_)) => var.ty.rank() == 0 && var.ty.dtype == DType::I64,
        Some(feature_type::Type::DictionaryType(_)) => {
            var.ty.rank() == 1 && var.ty.dtype == DType::F64
        }
        _ => false,
    }
}

/// The IR description of `d` for `function`, whose image inputs were found by
/// [`read_image`]: a classifier needs both named outputs produced by one `classify` op.
pub fn read_description(
    d: &ModelDescription,
    function: &Function,
    images: BTreeMap<String, ColorLayout>,
) -> Result<Description, String> {
    let metadata = d.metadata.clone().unwrap_or_default();
    let classifier = match (
        d.predicted_feature_name.as_str(),
        d.predicted_probabilities_name.as_str(),
    ) {
        ("", "") => None,
        (label, probabilities) => {
            let c = Classifier {
                label: label.to_string(),
                probabilities: probabilities.to_string(),
            };
            if c.op(function).is_none() {
                return Err(format!(
                    "the description names classifier outputs '{label}' and '{probabilities}', \
                     which no classify op produces"
                ));
            }
            Some(c)
        }
    };
    let features = d
        .input
        .iter()
        .chain(&d.output)
        .filter(|f| !f.short_description.is_empty())
        .map(|f| (f.name.clone(), f.short_description.clone()))
        .collect();
    Ok(Description {
        author: metadata.author,
        license: metadata.license,
        short_description: metadata.short_description,
        version_string: metadata.version_string,
        features,
        images,
        classifier,
    })
}

/// Whether `feature` is an image.
pub fn image_type(feature: &FeatureDescription) -> Option<&ImageFeatureType> {
    match feature.r#type.as_ref().and_then(|t| t.r#type.as_ref()) {
        Some(feature_type::Type::ImageType(i)) => Some(i),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::TensorType;

    fn flexible_image() -> Var {
        Var::new(
            "x",
            TensorType {
                dtype: DType::F32,
                shape: vec![
                    Dim::Fixed(1),
                    Dim::Fixed(3),
                    Dim::Symbol("h".into()),
                    Dim::Symbol("w".into()),
                ],
            },
        )
    }

    #[test]
    fn flexible_image_sizes_round_trip() {
        let var = flexible_image();
        for set in [
            ShapeSet::Ranges(vec![(1, Some(1)), (3, Some(3)), (8, Some(64)), (16, None)]),
            ShapeSet::Enumerated(vec![vec![1, 3, 8, 16], vec![1, 3, 32, 24]]),
        ] {
            let t = image_feature(&var, ColorLayout::Bgr, Some(&set)).unwrap();
            let Some(feature_type::Type::ImageType(image)) = &t.r#type else {
                panic!("{t:?}")
            };
            // The default size: the lower bounds, or the first enumerated size.
            assert_eq!((image.width, image.height), (16, 8));
            assert_eq!(image.color_space, ColorSpace::Bgr as i32);
            let (layout, back) = read_image(image, &var).unwrap();
            assert_eq!((layout, back), (ColorLayout::Bgr, Some(set)));
        }
    }

    #[test]
    fn images_need_nchw_fp32_with_the_layout_channels() {
        let fixed = Var::new("x", TensorType::fixed(DType::F32, &[1, 3, 4, 5]));
        let err = image_feature(&fixed, ColorLayout::Gray, None).unwrap_err();
        assert!(err.contains("[1, 1, H, W]"), "{err}");
        let half = Var::new("x", TensorType::fixed(DType::F16, &[1, 3, 4, 5]));
        assert!(image_feature(&half, ColorLayout::Rgb, None).is_err());
        assert!(image_feature(&flexible_image(), ColorLayout::Rgb, None).is_err());
        let t = image_feature(&fixed, ColorLayout::Rgb, None).unwrap();
        let Some(feature_type::Type::ImageType(mut image)) = t.r#type else {
            panic!()
        };
        image.width = 6;
        let err = read_image(&image, &fixed).unwrap_err();
        assert!(err.contains("does not match"), "{err}");
    }
}
