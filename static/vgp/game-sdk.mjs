// Named exports for games that prefer `import { connect } from ".../game-sdk.mjs"`.
import "./game-sdk.js";

const VGP = globalThis.VGP;
export const { connect, VGPError, ChunkStream, HttpTransport } = VGP;
export default VGP;
