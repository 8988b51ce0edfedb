// Which stereo frame the video shows: frame messages (with the eyes they were rendered from) matched to
// the decoded pictures by RTP timestamp. A frame message's pts counts from the connection's first frame;
// the RTP timestamps a browser reports (requestVideoFrameCallback's rtpTimestamp) carry the sender's
// random offset, so the offset is learnt: the difference that most recent pairs agree on.

const KEEP = 90;
const WRAP = 2 ** 32;

export class StereoFrames {
  constructor() {
    this.metas = new Map(); // pts -> frame message with xr
    this.offset = null;
    this.current = null; // the message of the picture on screen now
    this._seen = []; // recent rtp timestamps
  }

  /** A `frame` message arrived. */
  add(message) {
    if (!message.xr || typeof message.pts !== "number") return;
    this.metas.set(message.pts, message);
    if (this.metas.size > KEEP) this.metas.delete(this.metas.keys().next().value);
  }

  /** A picture was presented (requestVideoFrameCallback's metadata); returns its message or null. */
  presented(metadata) {
    const rtp = metadata && metadata.rtpTimestamp;
    if (typeof rtp !== "number") {
      this.current = this.newest(); // no RTP time from this browser: the newest is the best guess
      return this.current;
    }
    this._seen.push(rtp);
    if (this._seen.length > 30) this._seen.shift();
    let found = this.offset === null ? null : this.metas.get((rtp - this.offset + WRAP) % WRAP);
    if (!found) {
      this._learn();
      found = this.offset === null ? null : this.metas.get((rtp - this.offset + WRAP) % WRAP);
    }
    if (found) this.current = found;
    return found || null;
  }

  newest() {
    let newest = null;
    for (const message of this.metas.values()) newest = message;
    return newest;
  }

  _learn() {
    const votes = new Map();
    for (const rtp of this._seen) {
      for (const pts of this.metas.keys()) {
        const offset = (rtp - pts + WRAP) % WRAP;
        votes.set(offset, (votes.get(offset) || 0) + 1);
      }
    }
    let best = null;
    for (const [offset, count] of votes) if (!best || count > best[1]) best = [offset, count];
    if (best && best[1] >= Math.min(3, this._seen.length)) this.offset = best[0];
  }
}
