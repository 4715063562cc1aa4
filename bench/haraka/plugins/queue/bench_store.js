// bench_store - the same job as Postdoc's intake, for bench/intake: stream
// the raw message to a file, write each attachment (decoded) to its own
// file, fsync every file and the directory, and only then answer OK (250).
// Files go under $BENCH_HARAKA_STORE (one directory per run).
'use strict'
const fs = require('node:fs')
const path = require('node:path')
const crypto = require('node:crypto')

let dir
let dirfd

exports.register = function () {
    dir = process.env.BENCH_HARAKA_STORE || '/tmp/haraka-store'
    fs.mkdirSync(dir, { recursive: true })
    dirfd = fs.openSync(dir, 'r')
}

function fsync_close(ws, cb) {
    // After 'finish' the data is in the kernel: fsync, then close.
    fs.fsync(ws.fd, (err) => {
        if (err) return cb(err)
        fs.close(ws.fd, cb)
    })
}

function open_ws(name) {
    return fs.createWriteStream(path.join(dir, name), { flags: 'wx', autoClose: false })
}

exports.hook_data = function (next, connection) {
    const txn = connection.transaction
    txn.notes.bench_atts = []
    txn.attachment_hooks((ct, fn, body, stream) => {
        const id = crypto.randomBytes(12).toString('hex')
        const ws = open_ws(`${id}.att`)
        const done = new Promise((resolve, reject) => {
            ws.on('finish', () => fsync_close(ws, (e) => (e ? reject(e) : resolve())))
            ws.on('error', reject)
        })
        txn.notes.bench_atts.push(done)
        stream.connection = connection
        stream.pipe(ws)
    })
    next()
}

exports.hook_queue = function (next, connection) {
    const txn = connection.transaction
    const ws = open_ws(`${txn.uuid}.eml`)
    const raw = new Promise((resolve, reject) => {
        ws.on('finish', () => fsync_close(ws, (e) => (e ? reject(e) : resolve())))
        ws.on('error', reject)
    })
    txn.message_stream.pipe(ws)
    Promise.all([raw, ...txn.notes.bench_atts])
        .then(() => new Promise((resolve, reject) =>
            fs.fsync(dirfd, (e) => (e ? reject(e) : resolve()))))
        .then(() => next(OK, 'stored'))
        .catch((e) => {
            connection.logerror(this, `store: ${e}`)
            next(DENYSOFT, 'local error')
        })
}

// Every recipient is ours (Postdoc checks a dossier table; here nothing).
exports.hook_rcpt = function (next) {
    next(OK)
}
