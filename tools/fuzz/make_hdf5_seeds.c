/* Writes the fuzz_hdf5 seed files (small valid data sets) into the current directory.
 * Not part of the build: cc make_hdf5_seeds.c -I/usr/include/hdf5/serial -lhdf5_serial && ./a.out
 * (h5py is not needed). nchw_u8.h5: images uint8 [4,1,4,4] + labels int64 [4] + classes = 3;
 * nhwc_f32.h5: float [3,4,4,3] with layout = "nhwc" (chunked + deflate) + labels int32; nhw_u8.h5: [2,3,3] + uint8 labels. */
#include <hdf5.h>
#include <string.h>

static void strAttr(hid_t obj, const char* name, const char* v) {
  hid_t t = H5Tcopy(H5T_C_S1), s = H5Screate(H5S_SCALAR);
  H5Tset_size(t, strlen(v));
  hid_t a = H5Acreate2(obj, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(a, t, v);
  H5Aclose(a), H5Sclose(s), H5Tclose(t);
}

static hid_t dataset(hid_t f, const char* name, hid_t ftype, hid_t mtype, int rank, const hsize_t* dims,
                     const void* data, hid_t dcpl) {
  hid_t s = H5Screate_simple(rank, dims, NULL);
  hid_t d = H5Dcreate2(f, name, ftype, s, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
  H5Sclose(s);
  return d;
}

int main(void) {
  {
    unsigned char px[64];
    for (int i = 0; i < 64; ++i) px[i] = (unsigned char)(i * 7);
    long long lb[4] = {0, 1, 2, 1};
    hid_t f = H5Fcreate("nchw_u8.h5", H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t di[4] = {4, 1, 4, 4}, dl[1] = {4};
    H5Dclose(dataset(f, "images", H5T_STD_U8LE, H5T_NATIVE_UCHAR, 4, di, px, H5P_DEFAULT));
    H5Dclose(dataset(f, "labels", H5T_STD_I64LE, H5T_NATIVE_LLONG, 1, dl, lb, H5P_DEFAULT));
    long long classes = 3;
    hid_t s = H5Screate(H5S_SCALAR), a = H5Acreate2(f, "classes", H5T_STD_I64LE, s, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_LLONG, &classes);
    H5Aclose(a), H5Sclose(s), H5Fclose(f);
  }
  {
    float px[144];
    for (int i = 0; i < 144; ++i) px[i] = (float)i / 144.f;
    int lb[3] = {0, 1, 0};
    hid_t f = H5Fcreate("nhwc_f32.h5", H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t di[4] = {3, 4, 4, 3}, dl[1] = {3}, ch[4] = {1, 4, 4, 3};
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 4, ch);
    H5Pset_deflate(dcpl, 4);
    hid_t d = dataset(f, "images", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 4, di, px, dcpl);
    strAttr(d, "layout", "nhwc");
    H5Dclose(d), H5Pclose(dcpl);
    H5Dclose(dataset(f, "labels", H5T_STD_I32LE, H5T_NATIVE_INT, 1, dl, lb, H5P_DEFAULT));
    H5Fclose(f);
  }
  {
    unsigned char px[18], lb[2] = {1, 0};
    for (int i = 0; i < 18; ++i) px[i] = (unsigned char)(255 - i);
    hid_t f = H5Fcreate("nhw_u8.h5", H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t di[3] = {2, 3, 3}, dl[1] = {2};
    H5Dclose(dataset(f, "images", H5T_STD_U8LE, H5T_NATIVE_UCHAR, 3, di, px, H5P_DEFAULT));
    H5Dclose(dataset(f, "labels", H5T_STD_U8LE, H5T_NATIVE_UCHAR, 1, dl, lb, H5P_DEFAULT));
    H5Fclose(f);
  }
  return 0;
}
