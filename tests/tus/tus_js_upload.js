// Uploads one file with tus-js-client (npm) under Node, as a user of that
// client would. Used by crates/cli/tests/tus_clients.rs.
// Arguments: ENDPOINT FILE RELATIVE_PATH CHUNK_BYTES [with-creation-upload]
// Prints the upload URL on success; exits 1 with the error otherwise.
const fs = require('fs')
const tus = require('tus-js-client')

const [endpoint, path, relativePath, chunk, mode] = process.argv.slice(2)
const file = fs.readFileSync(path)
const upload = new tus.Upload(file, {
  endpoint,
  chunkSize: Number(chunk),
  metadata: { relative_path: relativePath, filetype: 'application/octet-stream' },
  uploadDataDuringCreation: mode === 'with-creation-upload',
  // Dropped connections and restarts are retried from the server's offset.
  retryDelays: [0, 500, 1000, 1000, 2000, 2000, 3000, 3000, 5000, 5000, 5000, 5000],
  onError (error) {
    console.error(`upload failed: ${error}`)
    process.exit(1)
  },
  onSuccess () {
    console.log(upload.url)
  }
})
upload.start()
