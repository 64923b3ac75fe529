// libhdf5 (Debian's libhdf5-dev, serial build: headers in /usr/include/hdf5/serial, found through the
// `hdf5` pkg-config file). Swift cannot import the library's macros (H5P_DEFAULT, H5T_NATIVE_FLOAT, ...:
// they expand to calls and globals), so small inline functions name them.
#include <hdf5.h>

static inline hid_t chdf5_default(void) { return H5P_DEFAULT; }
static inline hid_t chdf5_native_float(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t chdf5_native_double(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t chdf5_file_access(void) { return H5P_FILE_ACCESS; }
static inline hid_t chdf5_c_s1(void) { return H5T_C_S1; }
static inline unsigned chdf5_acc_rdonly(void) { return H5F_ACC_RDONLY; }
static inline hid_t chdf5_error_default(void) { return H5E_DEFAULT; }

/// Turns off libhdf5's own printing of its error stack (errors are reported by return values).
static inline void chdf5_silence(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }
static inline hid_t chdf5_all(void) { return H5S_ALL; }
static inline size_t chdf5_variable(void) { return H5T_VARIABLE; }
