// Chained dispatches (shared.h MV_SIGNAL / MV_WAIT): a producer's workgroups count themselves in a
// sync block and the last sets its flags; a consumer's workgroups, recorded without a barrier, poll one
// flag each. The includer declares `coherent buffer ... { uint sync_count[]; }`. Uniform control flow.

shared bool sync_last;

// After everything this workgroup writes.
void sync_signal(uint off) {
    memoryBarrierBuffer();
    barrier();
    if (gl_LocalInvocationIndex == 0u)
        sync_last = atomicAdd(sync_count[off], 1u) == gl_NumWorkGroups.x * gl_NumWorkGroups.y * gl_NumWorkGroups.z - 1u;
    barrier();
    if (!sync_last) return;
    memoryBarrierBuffer();  // the other workgroups' writes (before their counts) before the flags
    if (gl_LocalInvocationIndex == 0u) atomicExchange(sync_count[off], 0u);
    for (uint i = gl_LocalInvocationIndex; i < SYNC_FLAGS; i += gl_WorkGroupSize.x * gl_WorkGroupSize.y)
        atomicExchange(sync_count[off + SYNC_LINE * (1u + i)], 1u);
}

// Before reading anything the producer wrote. One invocation polls with an atomic (a plain load in an
// empty loop may be assumed to terminate and dropped: measured on the H200); the barrier holds the rest.
void sync_wait(uint off) {
    if (gl_LocalInvocationIndex == 0u) {
        const uint f = off + SYNC_LINE * (1u + (gl_WorkGroupID.x + gl_WorkGroupID.y) % SYNC_FLAGS);
        while (atomicAdd(sync_count[f], 0u) == 0u) {}
    }
    barrier();
    memoryBarrierBuffer();  // the producer's writes after its flag
}
