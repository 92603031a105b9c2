// An edge's traffic counters (njs 0.7), read by the controller's health monitor on each
// probe (cdn_ctl/health.py) to compute the cache hit ratio and the uplink in use.
//
// njs 0.7 has no shared dictionary and no state that outlives a request, and nginx keeps
// no per-cache-status counters of its own, so each worker keeps its counts in its own
// file under $edge_stats_dir, named by its pid. A worker handles one request at a time
// and these calls are synchronous, so nothing else writes that file while it reads and
// rewrites it. The record has a fixed size and is overwritten in place, never truncated
// or renamed: one small write per request, and no filesystem flushes the file on close
// the way ext4 does for a truncated or renamed-over one (that cost most of a request).
// A worker gone after a reload leaves its file: the counts stay cumulative. $edge_epoch
// changes when nginx is started again (the counts restart from zero), so a reader can
// tell a restart from a quiet edge.
var fs = require('fs');

// Served from the edge's cache; every other non-empty status (MISS, EXPIRED, BYPASS)
// went to the parent.
var HITS = {HIT: 1, STALE: 1, UPDATING: 1, REVALIDATED: 1};

function sum(text) {
    // "$upstream_bytes_received" lists one number per upstream tried (", ") and per
    // internal redirect (" : "); "-" when nothing was received.
    var total = 0;
    var parts = (text || '').split(/[ ,:]+/);
    for (var i = 0; i < parts.length; i++) {
        var n = Number(parts[i]);
        if (parts[i] !== '' && n > 0) {
            total += n;
        }
    }
    return total;
}

// hits, misses, upstream bytes: three space-padded numbers on one line.
var RECORD = 64;

function parse(text) {
    var parts = text.trim().split(/ +/);
    var counts = {hit: Number(parts[0]), miss: Number(parts[1]), bytes: Number(parts[2])};
    var ok = parts.length === 3 && counts.hit >= 0 && counts.miss >= 0 && counts.bytes >= 0;
    return ok ? counts : {hit: 0, miss: 0, bytes: 0};
}

// Another worker's record, read until two reads agree: a read racing its owner's write
// could see half of each.
function read(path) {
    var text = '';
    for (var i = 0; i < 3; i++) {
        try {
            var again = fs.readFileSync(path).toString();
            if (again === text) {
                break;
            }
            text = again;
        } catch (e) {
            text = '';
        }
    }
    return parse(text);
}

function open(path) {
    try {
        return fs.openSync(path, 'r+');
    } catch (e) {
        return fs.openSync(path, 'w+');  // this worker's first count
    }
}

// Evaluated once per logged request (the access log's if=), after the response: counts
// the request by its cache status and adds what the parent sent. Always "1" (log it).
function tally(r) {
    var v = r.variables;
    var status = v.upstream_cache_status;
    var bytes = sum(v.upstream_bytes_received);
    if (!status && !bytes) {
        return '1';
    }
    var fd = -1;
    try {
        fd = open(v.edge_stats_dir + '/' + process.pid);
        var buf = Buffer.alloc(RECORD);
        var counts = parse(buf.toString('utf8', 0, fs.readSync(fd, buf, 0, RECORD, 0)));
        if (status) {
            counts[HITS[status] ? 'hit' : 'miss'] += 1;
        }
        counts.bytes += bytes;
        var line = counts.hit + ' ' + counts.miss + ' ' + counts.bytes;
        var record = Buffer.from(line + ' '.repeat(RECORD - 1 - line.length) + '\n');
        fs.writeSync(fd, record, 0, RECORD, 0);
    } catch (e) {
        // A full disk loses counts, never a response.
    } finally {
        if (fd >= 0) {
            fs.closeSync(fd);
        }
    }
    return '1';
}

// GET (signed) /_edge/stats: every worker's counts, summed.
function stats(r) {
    var dir = r.variables.edge_stats_dir;
    var total = {epoch: r.variables.edge_epoch, hits: 0, misses: 0, upstream_bytes: 0};
    var names = fs.readdirSync(dir);
    for (var i = 0; i < names.length; i++) {
        if (/^[0-9]+$/.test(names[i])) {
            var counts = read(dir + '/' + names[i]);
            total.hits += counts.hit;
            total.misses += counts.miss;
            total.upstream_bytes += counts.bytes;
        }
    }
    r.headersOut['Content-Type'] = 'application/json';
    r.headersOut['Cache-Control'] = 'no-store';
    r.return(200, JSON.stringify(total));
}

export default {tally: tally, stats: stats, sum: sum};
