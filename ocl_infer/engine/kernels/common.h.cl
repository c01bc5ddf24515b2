// Offset of flat index `o` of a tensor with dims `d` read through strides `s` (rank 8, right-aligned).
inline int bidx(int o, const int8 d, const int8 s) {
    int r = 0;
    r += (o % d.s7) * s.s7; o /= d.s7;
    r += (o % d.s6) * s.s6; o /= d.s6;
    r += (o % d.s5) * s.s5; o /= d.s5;
    r += (o % d.s4) * s.s4; o /= d.s4;
    r += (o % d.s3) * s.s3; o /= d.s3;
    r += (o % d.s2) * s.s2; o /= d.s2;
    r += (o % d.s1) * s.s1; o /= d.s1;
    r += o * s.s0;
    return r;
}
