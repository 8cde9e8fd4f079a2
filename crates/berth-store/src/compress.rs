//! How long bodies are compressed, in the tables and in memory alike: an LZ4 block behind a
//! 4-byte little-endian header. The header's low 28 bits hold the JSON's length, its high 4
//! bits the dictionary the block was compressed with: 0 for none (every body written before
//! dictionaries existed), 1 for [`DICTIONARY_1`]. A body of 256 MiB or more stays text.
//!
//! A record's JSON is mostly the same field names and values as every other record of its
//! kind. LZ4 finds repeats only within what it has seen, and a 2 KiB task had shown it too
//! little: it compressed to about 60 % of its size. With a dictionary (text the block may
//! refer back into, as if it came first) the boilerplate costs a few bytes a run.
//!
//! A dictionary never changes once released: a body compressed with it decodes only with
//! the same bytes (a test pins them). A better one is added under the next number.

/// Dictionary 1: skeletons of the ECS records written most (a task as stored with its task
/// definition, an instance's usage), and of an awsvpc task's attachment and a service's
/// deployment, with Berth's default account and region and no workload's own values (no
/// image, command or name; 256 CPU units and 512 MiB). LZ4 refers back up to 64 KiB.
const DICTIONARY_1: &[u8] = include_bytes!("dictionary-1.txt");

/// The header bits that hold the length.
const LENGTH_BITS: u32 = 28;
const LENGTH_MASK: u32 = (1 << LENGTH_BITS) - 1;

/// The dictionary new bodies are compressed with.
const CURRENT: u32 = 1;

fn dictionary(number: u32) -> Option<&'static [u8]> {
    match number {
        0 => Some(b""),
        1 => Some(DICTIONARY_1),
        _ => None,
    }
}

/// `json` compressed, with its header; `None` for a body of 256 MiB or more, whose length
/// the header cannot hold (its caller keeps it as text).
///
/// The block is made in a buffer the thread keeps and copied out at its size: one
/// allocation a body, where LZ4's own vector was allocated at the block's largest possible
/// size, then shrunk (both inside the store's writer).
pub(crate) fn compress(json: &[u8]) -> Option<Box<[u8]>> {
    let len = u32::try_from(json.len())
        .ok()
        .filter(|len| *len <= LENGTH_MASK)?;
    crate::scratch::with(&BLOCK, |out| {
        let end = 4 + lz4_flex::block::get_maximum_output_size(json.len());
        if out.len() < end {
            out.resize(end, 0);
        }
        let n =
            lz4_flex::block::compress_into_with_dict(json, &mut out[4..end], DICTIONARY_1).ok()?;
        out[..4].copy_from_slice(&(len | (CURRENT << LENGTH_BITS)).to_le_bytes());
        Some(Box::from(&out[..4 + n]))
    })
}

thread_local! {
    /// [`compress`]'s output buffer.
    static BLOCK: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The JSON a [`compress`]ed blob holds (any dictionary this build knows).
pub(crate) fn decompress(blob: &[u8]) -> Result<Vec<u8>, String> {
    let Some((head, block)) = blob.split_first_chunk::<4>() else {
        return Err("a compressed body is shorter than its header".into());
    };
    let head = u32::from_le_bytes(*head);
    let number = head >> LENGTH_BITS;
    let len = (head & LENGTH_MASK) as usize;
    let dict = dictionary(number)
        .ok_or_else(|| format!("a compressed body names dictionary {number}, unknown here"))?;
    let json =
        lz4_flex::block::decompress_with_dict(block, len, dict).map_err(|e| e.to_string())?;
    if json.len() != len {
        return Err(format!(
            "a compressed body decodes to {} bytes, its header says {len}",
            json.len()
        ));
    }
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// FNV-1a: the dictionary's bytes may not change (bodies compressed with it would not
    /// decode); a better dictionary is added under a new number.
    fn fnv1a(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    }

    #[test]
    fn dictionary_1_is_what_was_released() {
        assert_eq!(
            (DICTIONARY_1.len(), fnv1a(DICTIONARY_1)),
            (DICTIONARY_1_LEN, DICTIONARY_1_FNV1A)
        );
    }

    const DICTIONARY_1_LEN: usize = 4280;
    const DICTIONARY_1_FNV1A: u64 = 0xc751_5228_dd1e_0e88;

    #[test]
    fn bodies_from_before_dictionaries_still_decode() {
        let json = br#"{"task":{"lastStatus":"RUNNING","desiredStatus":"RUNNING"}}"#.repeat(8);
        let old = lz4_flex::block::compress_prepend_size(&json);
        assert_eq!(decompress(&old).unwrap(), json);
    }

    #[test]
    fn a_task_compresses_to_a_fraction_of_what_plain_lz4_makes() {
        let task = format!(
            r#"{{"task":{{"attachments":[],"attributes":[{{"name":"ecs.cpu-architecture","value":"x86_64"}}],"availabilityZone":"us-east-1a","clusterArn":"arn:aws:ecs:us-east-1:000000000000:cluster/web","connectivity":"CONNECTED","containerInstanceArn":"arn:aws:ecs:us-east-1:000000000000:container-instance/web/{id}","desiredStatus":"RUNNING","lastStatus":"PENDING","launchType":"EC2","taskArn":"arn:aws:ecs:us-east-1:000000000000:task/web/{id}","version":1}},"reservedCpu":16,"reservedMemory":32,"reservedPorts":[],"reservedPortsUdp":[],"reservedGpus":[]}}"#,
            id = "0123456789abcdef0123456789abcdef"
        );
        let plain = lz4_flex::block::compress_prepend_size(task.as_bytes()).len();
        let with = compress(task.as_bytes()).unwrap();
        assert!(with.len() * 2 < plain, "{} against {plain}", with.len());
        assert_eq!(decompress(&with).unwrap(), task.as_bytes());
    }

    #[test]
    fn an_unknown_dictionary_or_a_short_blob_is_an_error_not_a_misreading() {
        let mut blob = compress(&[b'x'; 300]).unwrap();
        blob[3] = 0xf0;
        assert!(decompress(&blob).unwrap_err().contains("dictionary 15"));
        assert!(decompress(&[1, 2]).is_err());
        // A length that does not match the block is corrupt, not a shorter body.
        let mut blob = compress(&[b'y'; 300]).unwrap();
        blob[0] ^= 1;
        assert!(decompress(&blob).is_err());
    }

    proptest! {
        #[test]
        fn what_is_compressed_decompresses_to_itself(s in ".{0,3000}") {
            prop_assert_eq!(decompress(&compress(s.as_bytes()).unwrap()).unwrap(), s.as_bytes());
        }
    }
}
