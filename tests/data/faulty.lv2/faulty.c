/* A faulty LV2 effect for dreamfx's tests (tests/test_lv2.py builds it with gcc): it passes audio through,
   outputs NaN when its "nan" control is on, and crashes (writes through a null pointer) in run() when its
   "crash" control is on.  The LV2 descriptor is declared here so that no LV2 headers are needed. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

typedef void* LV2_Handle;
typedef struct { const char* URI; void* data; } LV2_Feature;
typedef struct LV2_Descriptor {
    const char* URI;
    LV2_Handle (*instantiate)(const struct LV2_Descriptor*, double, const char*, const LV2_Feature* const*);
    void (*connect_port)(LV2_Handle, uint32_t, void*);
    void (*activate)(LV2_Handle);
    void (*run)(LV2_Handle, uint32_t);
    void (*deactivate)(LV2_Handle);
    void (*cleanup)(LV2_Handle);
    const void* (*extension_data)(const char*);
} LV2_Descriptor;

typedef struct { const float* crash; const float* nan; const float* in; float* out; } Faulty;

static LV2_Handle instantiate(const LV2_Descriptor* d, double rate, const char* path, const LV2_Feature* const* f) {
    return calloc(1, sizeof(Faulty));
}

static void connect_port(LV2_Handle handle, uint32_t port, void* data) {
    Faulty* self = handle;
    if (port == 0) self->crash = data;
    if (port == 1) self->nan = data;
    if (port == 2) self->in = data;
    if (port == 3) self->out = data;
}

static void run(LV2_Handle handle, uint32_t frames) {
    Faulty* self = handle;
    if (*self->crash > 0.5f) {
        volatile float* nowhere = NULL;
        *nowhere = 1.0f;
    }
    for (uint32_t i = 0; i < frames; ++i) self->out[i] = *self->nan > 0.5f ? NAN : self->in[i];
}

static void cleanup(LV2_Handle handle) { free(handle); }

static const LV2_Descriptor descriptor = {"urn:dreamfx:test:faulty", instantiate, connect_port, NULL, run, NULL,
                                          cleanup, NULL};

__attribute__((visibility("default"))) const LV2_Descriptor* lv2_descriptor(uint32_t index) {
    return index == 0 ? &descriptor : NULL;
}
