//! The bundle's fixed layout: member names, the BagIt tag files' text,
//! and the tar headers (POSIX pax), all deterministic: the same package
//! and checkpoint give the same bytes.

use tar::{EntryType, Header};

/// Members, in the order a bundle holds them (the payload, `data/…`, last).
pub const BAGIT_TXT: &str = "bagit.txt";
/// `Payload-Oxum`, `Bagging-Date`, `External-Identifier`.
pub const BAG_INFO: &str = "bag-info.txt";
/// SHA-256 of every payload file.
pub const MANIFEST_SHA256: &str = "manifest-sha256.txt";
/// The package's canonical CBOR manifest (its BLAKE3 is the content address).
pub const MANIFEST_CBOR: &str = "registry/manifest.cbor";
/// The signed checkpoint the proofs are for.
pub const CHECKPOINT: &str = "registry/checkpoint";
/// Where each event's leaf, payload and inclusion proof are.
pub const EVENTS_DIR: &str = "registry/events/";
/// SHA-256 of every tag file above.
pub const TAGMANIFEST_SHA256: &str = "tagmanifest-sha256.txt";
/// The payload directory.
pub const DATA_DIR: &str = "data/";

/// The text of `bagit.txt` (RFC 8493 §2.1.1).
pub const BAGIT_TEXT: &str = "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n";

/// An event's members: leaf bytes, payload bytes, inclusion proof (JSON).
/// Sequences are zero-padded so the names sort in log order.
pub fn event_members(sequence: i64) -> [String; 3] {
    let stem = format!("{EVENTS_DIR}{sequence:020}");
    [
        format!("{stem}.leaf"),
        format!("{stem}.payload"),
        format!("{stem}.proof.json"),
    ]
}

/// A path as a BagIt manifest writes it: CR, LF and `%` percent-encoded
/// (RFC 8493 §2.1.3).
pub fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '%' => out.push_str("%25"),
            '\r' => out.push_str("%0D"),
            '\n' => out.push_str("%0A"),
            c => out.push(c),
        }
    }
    out
}

/// The inverse of [`encode_path`]; `None` for an escape it never writes.
pub fn decode_path(encoded: &str) -> Option<String> {
    let mut out = String::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3)?;
        out.push(match escape {
            "%25" => '%',
            "%0D" | "%0d" => '\r',
            "%0A" | "%0a" => '\n',
            _ => return None,
        });
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// One line of a BagIt checksum manifest.
pub fn manifest_line(sha256_hex: &str, path: &str) -> String {
    format!("{sha256_hex}  {}\n", encode_path(path))
}

/// A pax extended record: `"<length> <key>=<value>\n"`, the length
/// counting itself.
fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let body = format!(" {key}={value}\n");
    let mut length = body.len() + 1;
    while length.to_string().len() + body.len() != length {
        length += 1;
    }
    format!("{length}{body}").into_bytes()
}

/// Zero bytes that end a member of `size` bytes on a 512-byte block.
pub fn padding(size: u64) -> usize {
    ((512 - size % 512) % 512) as usize
}

/// The two zero blocks that end a tar.
pub const END_OF_ARCHIVE: [u8; 1024] = [0; 1024];

/// The largest size a ustar header holds (11 octal digits).
const USTAR_MAX_SIZE: u64 = 0o77777777777;

/// The header blocks of a regular file: a ustar header, preceded by a pax
/// extended header when the name, the owner or the size do not fit ustar.
/// Mode 0644, uid and gid 0, the given time and owner name.
pub fn file_header(name: &str, size: u64, mtime: u64, owner: &str) -> Vec<u8> {
    let fits_name = name.is_ascii() && name.len() <= 100;
    let fits_owner = owner.is_ascii() && owner.len() <= 31;
    let fits_size = size <= USTAR_MAX_SIZE;
    let mut out = Vec::with_capacity(1024);
    if !(fits_name && fits_owner && fits_size) {
        let mut records = Vec::new();
        if !fits_name {
            records.extend(pax_record("path", name));
        }
        if !fits_owner {
            records.extend(pax_record("uname", owner));
        }
        if !fits_size {
            records.extend(pax_record("size", &size.to_string()));
        }
        let mut pax = ustar(
            "PaxHeader",
            records.len() as u64,
            mtime,
            "",
            EntryType::XHeader,
        );
        out.append(&mut pax);
        out.extend_from_slice(&records);
        out.resize(out.len() + padding(records.len() as u64), 0);
    }
    let short_name: String = if fits_name {
        name.to_owned()
    } else {
        // Readers take the pax path; this is only a fallback for old ones.
        name.chars().filter(char::is_ascii).take(100).collect()
    };
    let short_owner: String = owner.chars().filter(char::is_ascii).take(31).collect();
    out.extend(ustar(
        &short_name,
        if fits_size { size } else { 0 },
        mtime,
        &short_owner,
        EntryType::Regular,
    ));
    out
}

fn ustar(name: &str, size: u64, mtime: u64, owner: &str, kind: EntryType) -> Vec<u8> {
    let mut header = Header::new_ustar();
    // Names above were cut to what ustar holds, so these cannot fail; a
    // failure would leave the field empty rather than stop a download.
    let _ = header.set_path(name);
    if header.path_bytes().as_ref() != name.as_bytes() {
        // `set_path` splits long names into prefix and name; when it
        // refuses, write the raw bytes into the name field.
        let field = &mut header.as_old_mut().name;
        let bytes = name.as_bytes();
        let n = bytes.len().min(field.len());
        field[..n].copy_from_slice(&bytes[..n]);
    }
    header.set_size(size);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(mtime);
    let _ = header.set_username(owner);
    let _ = header.set_groupname("");
    header.set_entry_type(kind);
    header.set_cksum();
    header.as_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip_through_bagit_encoding() {
        for path in ["a/b.txt", "100%/x", "line\nbreak\rreturn", "%0A literal"] {
            assert_eq!(decode_path(&encode_path(path)).as_deref(), Some(path));
        }
        assert_eq!(encode_path("a%b\n"), "a%25b%0A");
        assert_eq!(decode_path("bad%zz"), None);
    }

    #[test]
    fn pax_records_count_their_own_length() {
        let record = pax_record("path", &"x".repeat(95));
        let text = String::from_utf8(record.clone()).unwrap();
        let (length, _) = text.split_once(' ').unwrap();
        assert_eq!(length.parse::<usize>().unwrap(), record.len());
    }

    #[test]
    fn headers_read_back_with_long_and_unicode_names() {
        let long = format!("data/{}/résumé.txt", "deep/".repeat(40));
        let mut tar = Vec::new();
        for (name, body) in [
            ("data/short.txt", &b"abc"[..]),
            (long.as_str(), &b"xyz!"[..]),
        ] {
            tar.extend(file_header(
                name,
                body.len() as u64,
                1_700_000_000,
                "ci-producer",
            ));
            tar.extend_from_slice(body);
            tar.resize(tar.len() + padding(body.len() as u64), 0);
        }
        tar.extend_from_slice(&END_OF_ARCHIVE);
        let mut archive = tar::Archive::new(&tar[..]);
        let names: Vec<(String, u64, u64)> = archive
            .entries()
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                (
                    entry.path().unwrap().to_string_lossy().into_owned(),
                    entry.header().mtime().unwrap(),
                    entry.size(),
                )
            })
            .collect();
        assert_eq!(
            names,
            vec![
                ("data/short.txt".to_owned(), 1_700_000_000, 3),
                (long.clone(), 1_700_000_000, 4)
            ]
        );
    }
}
