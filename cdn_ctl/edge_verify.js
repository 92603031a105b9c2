// Edge-side verification of signed path tokens (njs 0.7). Mirrors
// cdn_ctl/signing.py: HMAC-SHA256 over "exp|kid|ip|scope", base64url without
// padding; scope is a '/'-terminated prefix of the path after the token (or the
// whole path) with no cut view's directories below it. Order of checks: signature
// (403), expiry (410), client IP (403).
// Secrets come from the map in keys.conf ($tok_secret, base64url), so rotating
// keys is a re-render of that file and a reload: no call back to the controller.
// The token parts ($tok_exp, $tok_kid, $tok_ip, $tok_sig, $tok_rest) are captures
// of the raw request URI after nginx.conf has validated it (see edge_conf.py).
var crypto = require('crypto');

var MAX_SCOPE_DEPTH = 8;
// A cut view's directories (x/{feed}/{start}-{end}/): a scope never covers one below it.
var CUT = /^x\/[^\/]+\/[^\/]+\//;

// Where the last cut below any scope starts (-1: none).
function lastCut(rest) {
    var last = -1;
    for (var j = 0; j < rest.length; j++) {
        if ((j === 0 || rest.charAt(j - 1) === '/') && rest.charAt(j) === 'x' &&
                CUT.test(rest.substring(j))) {
            last = j;
        }
    }
    return last;
}

function candidates(rest) {
    var out = [];
    var cut = lastCut(rest);
    for (var i = 0, seen = 0; i < rest.length && seen < MAX_SCOPE_DEPTH; i++) {
        if (rest.charAt(i) === '/') {
            seen++;
            if (i + 1 > cut) {
                out.push(rest.substring(0, i + 1));
            }
        }
    }
    if (rest.length > 0 && rest.charAt(rest.length - 1) !== '/') {
        out.push(rest);
    }
    return out;
}

function sign(secret, exp, kid, ip, scope) {
    return crypto.createHmac('sha256', secret)
        .update(exp + '|' + kid + '|' + ip + '|' + scope)
        .digest('base64url');
}

// Constant-time equality of two signatures: every character is compared (XOR
// accumulated, no early exit), so the time taken does not tell an attacker how
// many leading characters of a forged signature were right. The strings are
// compared (not decoded bytes) so that, as in signing.py, only the canonical
// base64url form is accepted. Lengths are public (43 by the URI pattern).
function equal(a, b) {
    if (typeof a !== 'string' || typeof b !== 'string' || a.length !== b.length) {
        return false;
    }
    var diff = 0;
    for (var i = 0; i < a.length; i++) {
        diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
    }
    return diff === 0;
}

function check(r) {
    var v = r.variables;
    var secretText = v.tok_secret;
    if (!secretText || !v.tok_exp || !v.tok_sig) {
        return '403';
    }
    var secret = Buffer.from(secretText, 'base64url');
    var scopes = candidates(v.tok_rest || '');
    var ok = false;
    // Stopping at a match only reveals which scope matched, which the path shows anyway.
    for (var i = 0; i < scopes.length && !ok; i++) {
        ok = equal(sign(secret, v.tok_exp, v.tok_kid, v.tok_ip, scopes[i]), v.tok_sig);
    }
    if (!ok) {
        return '403';
    }
    if (Date.now() / 1000 >= Number(v.tok_exp)) {
        return '410';
    }
    if (v.tok_ip !== '-' && v.tok_ip !== r.remoteAddress) {
        return '403';
    }
    return '200';
}

function verify(r) {
    try {
        return check(r);
    } catch (e) {
        return '403';
    }
}

var SAFE = /^[A-Za-z0-9_-]{1,64}$/;

// The master playlist's first line, plus EXT-X-CONTENT-STEERING when the edge
// knows its controller: the box then reloads the steering manifest and moves
// to another pathway (edge) without restarting playback.
function steering(r) {
    var v = r.variables;
    if (!v.steer_base) {
        return '#EXTM3U';
    }
    var query = 'base=' + v.edge_id;
    // The lease travels as lease_id; "session" is its old name, accepted until 2.0.
    var lease = r.args.lease_id || r.args.session;
    var region = r.args.region;
    if (lease && SAFE.test(lease)) {
        query += '&lease_id=' + lease;
    }
    if (region && /^[0-9]{6}$/.test(region)) {
        query += '&region=' + region;
    }
    return '#EXTM3U\n#EXT-X-CONTENT-STEERING:SERVER-URI="' + v.steer_base + '/steering/' +
        v.tok_channel + '.json?' + query + '",PATHWAY-ID="' + v.edge_id + '"';
}

export default {verify: verify, steering: steering, candidates: candidates, equal: equal};
