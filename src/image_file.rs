//! PNG and JPEG files as the value of an image input: decoded with the `image` crate, in the
//! input's color layout, as CHW float pixels in 0..255 with a batch of 1 — what Core ML hands
//! a program for an `imageType` input before the program's own scale and bias.

use crate::interp::Value;
use crate::ir::{ColorLayout, ShapeSet};
use crate::{input_file, Error};
use image::ImageFormat;
use ndarray::{ArrayD, IxDyn};
use std::path::Path;

/// True when `path` names a PNG or JPEG file (by extension).
pub fn is_image_file(path: &Path) -> bool {
    format_of(path).is_some()
}

/// The format of `path` by extension.
fn format_of(path: &Path) -> Option<ImageFormat> {
    match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
        "png" => Some(ImageFormat::Png),
        "jpg" | "jpeg" => Some(ImageFormat::Jpeg),
        _ => None,
    }
}

/// Decodes the image at `path` for input `input` of `layout`, whose shape is `[1, C, H, W]`
/// with `size` (height, width) when fixed, or one `accepted` admits. The image is not resized:
/// another size is a usage error naming the flag.
pub fn read_image(
    path: &Path,
    input: &str,
    layout: ColorLayout,
    size: Option<(usize, usize)>,
    accepted: Option<&ShapeSet>,
) -> Result<Value, Error> {
    let format = format_of(path).ok_or_else(|| {
        Error::Usage(format!(
            "--input {input}={}: an image input takes a .png or .jpg file",
            path.display()
        ))
    })?;
    let bytes = input_file::read(path).map_err(|e| input_file::error(path, e))?;
    let decoded = image::load_from_memory_with_format(&bytes, format)
        .map_err(|e| Error::invalid(path, format!("cannot decode the image: {e}")))?;
    let (w, h) = (decoded.width() as usize, decoded.height() as usize);
    let c = layout.channels();
    let fits = match (size, accepted) {
        (Some(size), _) => size == (h, w),
        (None, Some(set)) => set.admits(&[1, c, h, w]),
        (None, None) => false,
    };
    if !fits {
        let wanted = match (size, accepted) {
            (Some((sh, sw)), _) => format!("{sw}x{sh}"),
            (None, Some(set)) => format!("a size the package accepts ({set})"),
            (None, None) => "a fixed size".into(),
        };
        return Err(Error::Usage(format!(
            "--input {input}={}: the image is {w}x{h} (width x height), the input takes {wanted}; \
             mlpack does not resize images",
            path.display()
        )));
    }
    let plane = h * w;
    let mut chw = vec![0f32; c * plane];
    match layout {
        ColorLayout::Gray => {
            for (i, p) in decoded.to_luma8().pixels().enumerate() {
                chw[i] = p.0[0] as f32;
            }
        }
        ColorLayout::Rgb | ColorLayout::Bgr => {
            let order = if layout == ColorLayout::Rgb {
                [0, 1, 2]
            } else {
                [2, 1, 0]
            };
            for (i, p) in decoded.to_rgb8().pixels().enumerate() {
                for (channel, &source) in order.iter().enumerate() {
                    chw[channel * plane + i] = p.0[source] as f32;
                }
            }
        }
    }
    let array = ArrayD::from_shape_vec(IxDyn(&[1, c, h, w]), chw)
        .map_err(|e| Error::Internal(format!("image of {w}x{h}: {e}")))?;
    Ok(Value::Float(array))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(path: &Path, w: u32, h: u32) {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 200]));
        img.save_with_format(path, ImageFormat::Png).unwrap();
    }

    #[test]
    fn decodes_in_the_input_layout_and_refuses_other_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.png");
        png(&path, 3, 2);
        let rgb = read_image(&path, "x", ColorLayout::Rgb, Some((2, 3)), None).unwrap();
        let bgr = read_image(&path, "x", ColorLayout::Bgr, Some((2, 3)), None).unwrap();
        let (Value::Float(rgb), Value::Float(bgr)) = (rgb, bgr) else {
            panic!("not floats")
        };
        assert_eq!(rgb.shape(), [1, 3, 2, 3]);
        // Pixel (x=2, y=1): R=2, G=1, B=200.
        assert_eq!(
            [rgb[[0, 0, 1, 2]], rgb[[0, 1, 1, 2]], rgb[[0, 2, 1, 2]]],
            [2.0, 1.0, 200.0]
        );
        assert_eq!(
            [bgr[[0, 0, 1, 2]], bgr[[0, 1, 1, 2]], bgr[[0, 2, 1, 2]]],
            [200.0, 1.0, 2.0]
        );
        let gray = read_image(&path, "x", ColorLayout::Gray, Some((2, 3)), None).unwrap();
        assert_eq!(gray.shape(), [1, 1, 2, 3]);
        let err = read_image(&path, "x", ColorLayout::Rgb, Some((4, 4)), None).unwrap_err();
        assert!(
            err.to_string().contains("the image is 3x2") && err.to_string().contains("4x4"),
            "{err}"
        );
        let accepted =
            ShapeSet::Ranges(vec![(1, Some(1)), (3, Some(3)), (1, Some(8)), (1, Some(8))]);
        assert!(read_image(&path, "x", ColorLayout::Rgb, None, Some(&accepted)).is_ok());
        let bad = dir.path().join("b.png");
        std::fs::write(&bad, b"not a png").unwrap();
        let err = read_image(&bad, "x", ColorLayout::Rgb, Some((2, 3)), None).unwrap_err();
        assert!(err.to_string().contains("cannot decode the image"), "{err}");
    }
}
