// Routed experts grouped by expert (moe_group.comp) for the tiled products' _ids variants (mm.comp,
// mmt.comp): workgroup row y is tile y of the group buffer, (expert, first entry, entries) with n_tiles
// in word 0; entry (token j, slot k) = j * K + k (K = p.topk_k). Column c of the tile is entry
// first + c: x is column j (MM_X_TOKEN: the tokens' shared input, gate and up) or column `entry`
// (down), y column `entry`; W is the expert's matrix.
layout(binding = 3, std430) readonly buffer GrpBuf { uint G[]; };
uint n_valid, tile_first, expert;
uint entry_of(uint c) { return G[p.ids_off + tile_first + min(c, n_valid - 1u)]; }
uint x_col(uint c) {
    const uint e = entry_of(c);
    return p.x_off + ((p.flags & MM_X_TOKEN) != 0u ? e / p.topk_k : e) * p.x_col_stride;
}
uint y_col(uint c) { return entry_of(c); }
// Tile y's expert and entries; false past the group's tiles (the dispatch's bound, uniform).
bool ids_tile(uint y) {
    if (y >= G[0]) return false;
    expert = G[1u + 3u * y];
    tile_first = G[2u + 3u * y];
    n_valid = G[3u + 3u * y];
    return true;
}
