// The extension's entry point: Shopify's sandbox calls the registered function once per page.
import { register } from "@shopify/web-pixels-extension";
import { createPixel } from "./pixel.js";

register((api) => {
  createPixel(api);
});
