//! Bit packing of sub-byte element types (uint1–uint6, int4): the layout Core ML uses both in
//! `weight.bin` blobs and in the iOS16 constexpr ops' packed uint8 parameters.
//!
//! Element `i` of `bits` bits occupies stream bits `i·bits ..`, stream bit `k` being bit
//! `k mod 8` of byte `k / 8` (LSB first). Eight elements always fill exactly `bits` bytes,
//! so large streams are packed and unpacked in parallel in runs of eight elements.

use rayon::prelude::*;

/// Elements per parallel work item (a multiple of 8).
const TASK_ELEMENTS: usize = 1 << 16;

/// Packs elements of `bits` bits (1 to 8; one element per input byte, higher bits ignored)
/// into the LSB-first stream. Unused bits of the last byte are zero.
pub fn pack_bits(values: &[u8], bits: usize) -> Vec<u8> {
    assert!((1..=8).contains(&bits), "{bits}-bit elements");
    let mut out = vec![0u8; (values.len() * bits).div_ceil(8)];
    let task_bytes = TASK_ELEMENTS / 8 * bits;
    out.par_chunks_mut(task_bytes)
        .zip(values.par_chunks(TASK_ELEMENTS))
        .for_each(|(out, values)| pack_run(values, bits, out));
    out
}

/// Packs `values` into `out`, which starts on an element boundary at a byte boundary.
fn pack_run(values: &[u8], bits: usize, out: &mut [u8]) {
    match bits {
        1 => return pack_whole_bytes::<1>(values, out),
        2 => return pack_whole_bytes::<2>(values, out),
        4 => return pack_whole_bytes::<4>(values, out),
        8 => return out.copy_from_slice(values),
        _ => {}
    }
    let mask = (1u16 << bits) - 1;
    for (i, &v) in values.iter().enumerate() {
        let start = i * bits;
        let (byte, shift) = (start / 8, start % 8);
        let wide = (u16::from(v) & mask) << shift;
        out[byte] |= wide as u8;
        if shift + bits > 8 {
            out[byte + 1] |= (wide >> 8) as u8;
        }
    }
}

/// Packs widths that divide 8: each output byte holds `8 / BITS` whole elements.
fn pack_whole_bytes<const BITS: usize>(values: &[u8], out: &mut [u8]) {
    let mask = ((1u16 << BITS) - 1) as u8;
    for (byte, group) in out.iter_mut().zip(values.chunks(8 / BITS)) {
        let mut packed = 0u8;
        for (k, &v) in group.iter().enumerate() {
            packed |= (v & mask) << (k * BITS);
        }
        *byte = packed;
    }
}

/// Packs booleans as 1-bit elements, like [`pack_bits`] with `bits = 1` without a byte per
/// element first.
pub fn pack_bools(values: &[bool]) -> Vec<u8> {
    values
        .par_chunks(TASK_ELEMENTS)
        .flat_map_iter(|run| {
            run.chunks(8).map(|eight| {
                eight
                    .iter()
                    .enumerate()
                    .fold(0u8, |byte, (i, &set)| byte | u8::from(set) << i)
            })
        })
        .collect()
}

/// Unpacks `count` elements of `bits` bits (1 to 8) from a stream written by [`pack_bits`],
/// one unsigned element per output byte; `None` when `packed` is too short.
pub fn unpack_bits(packed: &[u8], bits: usize, count: usize) -> Option<Vec<u8>> {
    assert!((1..=8).contains(&bits), "{bits}-bit elements");
    let needed = count.checked_mul(bits)?.div_ceil(8);
    if packed.len() < needed {
        return None;
    }
    let mut values = vec![0u8; count];
    let task_bytes = TASK_ELEMENTS / 8 * bits;
    values
        .par_chunks_mut(TASK_ELEMENTS)
        .zip(packed[..needed].par_chunks(task_bytes))
        .for_each(|(values, packed)| unpack_run(packed, bits, values));
    Some(values)
}

/// Unpacks `values.len()` elements from `packed`, which starts at an element boundary.
fn unpack_run(packed: &[u8], bits: usize, values: &mut [u8]) {
    let mask = (1u16 << bits) - 1;
    if 8 % bits == 0 {
        let per_byte = 8 / bits;
        for (group, &byte) in values.chunks_mut(per_byte).zip(packed) {
            for (k, v) in group.iter_mut().enumerate() {
                *v = ((u16::from(byte) >> (k * bits)) & mask) as u8;
            }
        }
        return;
    }
    for (i, v) in values.iter_mut().enumerate() {
        let start = i * bits;
        let (byte, shift) = (start / 8, start % 8);
        let high = match packed.get(byte + 1) {
            Some(&next) if shift + bits > 8 => u16::from(next) << 8,
            _ => 0,
        };
        *v = (((u16::from(packed[byte]) | high) >> shift) & mask) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_uint4_low_nibble_first() {
        // docs/format.md §2: values 0..=15 then 1..=5 → 10 32 54 76 98 ba dc fe 21 43 05.
        let values: Vec<u8> = (0..16).chain(1..6).collect();
        let packed = pack_bits(&values, 4);
        assert_eq!(
            packed,
            [0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe, 0x21, 0x43, 0x05]
        );
        assert_eq!(unpack_bits(&packed, 4, 21).unwrap(), values);
    }

    #[test]
    fn packs_int4_twos_complement() {
        // §3.5: -8,-7,-1,0,1,7,3,-2,5,6,-3,2 → 98 0f 71 e3 65 2d.
        let values: Vec<i8> = vec![-8, -7, -1, 0, 1, 7, 3, -2, 5, 6, -3, 2];
        let bytes: Vec<u8> = values.iter().map(|&v| v as u8).collect();
        assert_eq!(pack_bits(&bytes, 4), [0x98, 0x0f, 0x71, 0xe3, 0x65, 0x2d]);
    }

    #[test]
    fn packs_uint3_across_byte_boundaries() {
        // §3.5: 0,1,2,3,4,5,6,7,7,6,5,4,3 → 88 c6 fa 77 39 (39 bits, 1 pad bit).
        let values = [0, 1, 2, 3, 4, 5, 6, 7, 7, 6, 5, 4, 3];
        let packed = pack_bits(&values, 3);
        assert_eq!(packed, [0x88, 0xc6, 0xfa, 0x77, 0x39]);
        assert_eq!(unpack_bits(&packed, 3, 13).unwrap(), values);
    }

    #[test]
    fn packs_uint1_masks() {
        // §3.5: 1,0,1,1,0,0,0,1 | 1,1,1 → 8d 07.
        let values = [1, 0, 1, 1, 0, 0, 0, 1, 1, 1, 1];
        assert_eq!(pack_bits(&values, 1), [0x8d, 0x07]);
        assert_eq!(unpack_bits(&[0x8d, 0x07], 1, 11).unwrap(), values);
    }

    #[test]
    fn uint6_and_uint2_round_trip() {
        let six: Vec<u8> = (0..12).map(|i| (i * 5 + 3) % 64).collect();
        let packed = pack_bits(&six, 6);
        assert_eq!(packed.len(), 9);
        // 3 fills bits 0-5; 8 = 0b001000 takes bits 6-11 (byte 1 low nibble = 8 >> 2 = 2);
        // 13 = 0b001101 starts at bit 12 (byte 1 high nibble = 13 & 0xf = 0xd).
        assert_eq!(packed[0], 0x03);
        assert_eq!(packed[1], 0xd2);
        assert_eq!(unpack_bits(&packed, 6, 12).unwrap(), six);
        assert_eq!(pack_bits(&[3, 0, 1, 2], 2), [0b1001_0011]);
        assert!(unpack_bits(&packed, 6, 13).is_none());
    }

    #[test]
    fn long_streams_match_the_bit_by_bit_layout() {
        // Several parallel work items and a ragged end, for every width.
        let count = 3 * TASK_ELEMENTS + 13;
        for bits in 1..=8usize {
            let values: Vec<u8> = (0..count)
                .map(|i| ((i * 2_654_435_761) >> 7) as u8 & ((1u16 << bits) - 1) as u8)
                .collect();
            let packed = pack_bits(&values, bits);
            assert_eq!(packed.len(), (count * bits).div_ceil(8));
            for (i, &v) in values.iter().enumerate().step_by(997) {
                for b in 0..bits {
                    let k = i * bits + b;
                    assert_eq!(
                        (packed[k / 8] >> (k % 8)) & 1,
                        (v >> b) & 1,
                        "{bits} bits, {i}"
                    );
                }
            }
            assert_eq!(
                unpack_bits(&packed, bits, count).unwrap(),
                values,
                "{bits} bits"
            );
        }
    }

    #[test]
    fn bools_pack_like_one_bit_elements() {
        for len in [0, 1, 7, 8, 9, 3 * TASK_ELEMENTS + 5] {
            let bools: Vec<bool> = (0..len).map(|i| (i * 7919) % 3 == 0).collect();
            let bytes: Vec<u8> = bools.iter().map(|&b| u8::from(b)).collect();
            assert_eq!(pack_bools(&bools), pack_bits(&bytes, 1), "{len}");
        }
    }
}
