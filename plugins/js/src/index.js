// Registers the plugin's App components. The Python panels render them by
// name (types.View(component=...)); see plugins/panels/review_queue.
import { ReviewQueue } from "./ReviewQueue.js";

window.__fop__.registerComponent({
  name: "StoplightReviewQueue",
  label: "Stoplight review queue",
  component: ReviewQueue,
  type: window.__fop__.PluginComponentType.Component,
  activator: () => true,
});
