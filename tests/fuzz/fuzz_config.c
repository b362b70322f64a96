/*
 * libFuzzer target: the YAML configuration file (util_config_load).
 * util_config_load reads a path, so each input is written to one memfd per process (a /dev/shm file when memfd_create
 * is unavailable) and loaded through /proc/self/fd/N. The environment is empty, so only the YAML is under test.
 */
#include "util/config.h"
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static char *const empty_env[] = {NULL};
static int yaml_fd = -1;
static char yaml_path[64];

static void cleanup_shm(void) { unlink(yaml_path); }

static void open_yaml_file(void)
{
    yaml_fd = memfd_create("fuzz_config.yaml", MFD_CLOEXEC);
    if (yaml_fd >= 0) {
        snprintf(yaml_path, sizeof(yaml_path), "/proc/self/fd/%d", yaml_fd);
        return;
    }
    snprintf(yaml_path, sizeof(yaml_path), "/dev/shm/fhirsched-fuzz-config-%ld.yaml", (long)getpid());
    yaml_fd = open(yaml_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (yaml_fd < 0) {
        perror("fuzz_config: cannot create the YAML file");
        abort();
    }
    atexit(cleanup_shm);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (yaml_fd < 0)
        open_yaml_file();
    if (ftruncate(yaml_fd, 0) != 0)
        abort();
    size_t off = 0;
    while (off != size) {
        ssize_t n = pwrite(yaml_fd, data + off, size - off, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            abort();
        off += (size_t)n;
    }

    util_config_t cfg;
    char err[512];
    util_config_defaults(&cfg);
    util_config_load(&cfg, yaml_path, empty_env, err, sizeof(err));
    util_config_dispose(&cfg);
    return 0;
}
