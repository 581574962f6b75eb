// Decoded images of the questions ahead, so that the next question is
// drawn from memory the moment a key is pressed. An image is fetched once
// (the browser caches it by URL) and decoded off the main thread
// (`HTMLImageElement.decode`); the cache keeps the most recent `max`.

export class ImageCache {
  constructor(max = 40, makeImage = () => new Image()) {
    this.max = max;
    this.makeImage = makeImage;
    this.entries = new Map(); // src -> {img, ready, failed, promise}
  }

  /** The entry of `src`, loading it when new. */
  load(src) {
    let e = this.entries.get(src);
    if (e) {
      // most recently used last
      this.entries.delete(src);
      this.entries.set(src, e);
      return e;
    }
    const img = this.makeImage();
    img.decoding = "async";
    e = { img, ready: false, failed: false, promise: null };
    e.promise = new Promise((resolve) => {
      img.onload = () => {
        const done = () => {
          e.ready = true;
          resolve(e);
        };
        // decode() resolves once the pixels are ready to paint
        if (typeof img.decode === "function") img.decode().then(done, done);
        else done();
      };
      img.onerror = () => {
        e.failed = true;
        resolve(e);
      };
    });
    img.src = src;
    this.entries.set(src, e);
    while (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value);
    return e;
  }

  /** Starts loading every source (the next questions' images). */
  prefetch(srcs) {
    for (const src of srcs) this.load(src);
  }
}
