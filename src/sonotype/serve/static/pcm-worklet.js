// AudioWorklet for the page's Listen mode: mono float32 PCM, posted to the page in blocks.
// Runs in the audio thread; the page forwards each block to the /v1/stream WebSocket as a
// binary message (the context's own sample rate is sent as sr: the server resamples).
"use strict";

const BLOCK = 2048; // about 43 ms at 48 kHz: few messages, little added latency

class PcmTap extends AudioWorkletProcessor {
  constructor() {
    super();
    this.buf = new Float32Array(BLOCK);
    this.n = 0;
    this.port.onmessage = (e) => { if (e.data === "flush") this.flush(); };
  }

  flush() {
    if (this.n) this.port.postMessage(this.buf.slice(0, this.n).buffer);
    this.n = 0;
  }

  process(inputs) {
    const chans = inputs[0];
    if (chans && chans.length) {
      const len = chans[0].length, k = chans.length;
      for (let i = 0; i < len; i++) {
        let v = 0;
        for (let c = 0; c < k; c++) v += chans[c][i];
        this.buf[this.n++] = v / k;
        if (this.n === BLOCK) this.flush();
      }
    }
    return true;
  }
}

registerProcessor("pcm-tap", PcmTap);
