"""Uploads one file with tuspy (PyPI), as a user of that client would.

Used by crates/cli/tests/tus_clients.rs. Arguments:
  ENDPOINT FILE RELATIVE_PATH CHUNK_BYTES [STOP_AT [RESUME_ENDPOINT]]
With STOP_AT, the first uploader stops there; a second uploader, given the
upload's URL on RESUME_ENDPOINT's server (another replica), finishes it.
Prints the upload URL on success; exits non-zero on failure.

tuspy retries a failed request itself, but not a failed HEAD (a server
that is down): its own answer to that is to resume from a stored URL
(`store_url`), as a restarted client would, which this driver does.
"""
import os
import sys
import tempfile
import time
from urllib.parse import urlsplit

from tusclient import client
from tusclient.storage.filestorage import FileStorage

ATTEMPTS = 30


def main():
    endpoint, path, relative_path, chunk = sys.argv[1:5]
    stop_at = int(sys.argv[5]) if len(sys.argv) > 5 else None
    resume_endpoint = sys.argv[6] if len(sys.argv) > 6 else None
    tus = client.TusClient(endpoint)
    if stop_at is None:
        storage_path = os.path.join(tempfile.mkdtemp(), "tus-urls.json")
        for attempt in range(ATTEMPTS):
            # A new uploader each time, as a restarted client: it finds the
            # upload's URL in the storage and asks the server its offset.
            uploader = tus.uploader(
                path,
                chunk_size=int(chunk),
                metadata={"relative_path": relative_path},
                upload_checksum=True,
                retries=3,
                retry_delay=1,
                store_url=True,
                url_storage=FileStorage(storage_path),
            )
            try:
                uploader.upload()
                print(uploader.url)
                return
            except Exception as error:  # the server went away
                if attempt + 1 == ATTEMPTS:
                    raise
                print(f"attempt {attempt + 1} failed ({error}); resuming", file=sys.stderr)
                time.sleep(1)
    uploader = tus.uploader(
        path,
        chunk_size=int(chunk),
        metadata={"relative_path": relative_path},
        upload_checksum=True,
        retries=20,
        retry_delay=1,
    )
    uploader.upload(stop_at=stop_at)
    url = uploader.url
    if resume_endpoint:
        # The same upload, through the other replica.
        other = urlsplit(resume_endpoint)
        url = urlsplit(url)._replace(scheme=other.scheme, netloc=other.netloc).geturl()
        tus = client.TusClient(resume_endpoint)
    resumed = tus.uploader(
        path,
        url=url,
        chunk_size=int(chunk),
        upload_checksum=True,
        retries=20,
        retry_delay=1,
    )
    if resumed.offset != stop_at:
        sys.exit(f"resumed at {resumed.offset}, not {stop_at}")
    resumed.upload()
    print(resumed.url)


if __name__ == "__main__":
    main()
