namespace Osprey.Tests.Sources.Rtsp;

/// <summary>
/// An H.264 stream made without an encoder (ITU-T H.264 7.3): a Baseline SPS and PPS, and IDR pictures whose
/// macroblocks are all I_PCM (mb_type 25: the raw 8-bit samples, 16x16 luma then 8x8 Cb and Cr), deblocking off, so
/// that a decoder gives back exactly the YUV 4:2:0 samples put in.
/// </summary>
internal static class H264PcmStream
{
    /// <summary>The SPS NAL unit (header 0x67) for a picture of width x height (multiples of 16).</summary>
    public static byte[] Sps(int width, int height)
    {
        var bits = new BitWriter();
        bits.U(8, 66);  // profile_idc: Baseline
        bits.U(8, 0);   // constraint_set flags, reserved
        bits.U(8, 30);  // level_idc 3.0
        bits.Ue(0);     // seq_parameter_set_id
        bits.Ue(0);     // log2_max_frame_num_minus4
        bits.Ue(2);     // pic_order_cnt_type 2: output order = decoding order
        bits.Ue(1);     // max_num_ref_frames
        bits.U(1, 0);   // gaps_in_frame_num_value_allowed_flag
        bits.Ue(width / 16 - 1);
        bits.Ue(height / 16 - 1);
        bits.U(1, 1);   // frame_mbs_only_flag
        bits.U(1, 1);   // direct_8x8_inference_flag
        bits.U(1, 0);   // frame_cropping_flag
        bits.U(1, 0);   // vui_parameters_present_flag
        return Nal(0x67, bits.Trailing());
    }

    /// <summary>The PPS NAL unit (header 0x68): CAVLC, one slice group, deblocking control present.</summary>
    public static byte[] Pps()
    {
        var bits = new BitWriter();
        bits.Ue(0);     // pic_parameter_set_id
        bits.Ue(0);     // seq_parameter_set_id
        bits.U(1, 0);   // entropy_coding_mode_flag: CAVLC
        bits.U(1, 0);   // bottom_field_pic_order_in_frame_present_flag
        bits.Ue(0);     // num_slice_groups_minus1
        bits.Ue(0);     // num_ref_idx_l0_default_active_minus1
        bits.Ue(0);     // num_ref_idx_l1_default_active_minus1
        bits.U(1, 0);   // weighted_pred_flag
        bits.U(2, 0);   // weighted_bipred_idc
        bits.Se(0);     // pic_init_qp_minus26
        bits.Se(0);     // pic_init_qs_minus26
        bits.Se(0);     // chroma_qp_index_offset
        bits.U(1, 1);   // deblocking_filter_control_present_flag
        bits.U(1, 0);   // constrained_intra_pred_flag
        bits.U(1, 0);   // redundant_pic_cnt_present_flag
        return Nal(0x68, bits.Trailing());
    }

    /// <summary>An IDR slice NAL unit (header 0x65) of the whole picture, every macroblock I_PCM, from I420 planes.</summary>
    public static byte[] IdrSlice(byte[] y, byte[] u, byte[] v, int width, int height, int idrPicId)
    {
        var bits = new BitWriter();
        bits.Ue(0);         // first_mb_in_slice
        bits.Ue(7);         // slice_type: I (all slices of the picture)
        bits.Ue(0);         // pic_parameter_set_id
        bits.U(4, 0);       // frame_num
        bits.Ue(idrPicId);  // idr_pic_id (differs between consecutive IDR pictures)
        bits.U(1, 0);       // no_output_of_prior_pics_flag
        bits.U(1, 0);       // long_term_reference_flag
        bits.Se(0);         // slice_qp_delta
        bits.Ue(1);         // disable_deblocking_filter_idc: off
        for (int mbY = 0; mbY < height / 16; mbY++)
            for (int mbX = 0; mbX < width / 16; mbX++)
            {
                bits.Ue(25);    // mb_type I_PCM
                bits.Align();   // pcm_alignment_zero_bit
                for (int r = 0; r < 16; r++)
                    for (int c = 0; c < 16; c++) bits.U(8, y[(mbY * 16 + r) * width + mbX * 16 + c]);
                foreach (var plane in new[] { u, v })
                    for (int r = 0; r < 8; r++)
                        for (int c = 0; c < 8; c++) bits.U(8, plane[(mbY * 8 + r) * (width / 2) + mbX * 8 + c]);
            }
        return Nal(0x65, bits.Trailing());
    }

    // header byte + the RBSP with emulation prevention (00 00 0x → 00 00 03 0x for x ≤ 3)
    private static byte[] Nal(byte header, List<byte> rbsp)
    {
        var nal = new List<byte> { header };
        int zeros = 0;
        foreach (byte b in rbsp)
        {
            if (zeros >= 2 && b <= 3)
            {
                nal.Add(3);
                zeros = 0;
            }
            nal.Add(b);
            zeros = b == 0 ? zeros + 1 : 0;
        }
        return nal.ToArray();
    }

    private sealed class BitWriter
    {
        private readonly List<byte> bytes = new();
        private int bit; // bits used in the last byte (0 = none pending)

        public void U(int count, int value)
        {
            for (int i = count - 1; i >= 0; i--)
            {
                if (bit == 0) bytes.Add(0);
                if ((value >> i & 1) != 0) bytes[^1] |= (byte)(0x80 >> bit);
                bit = (bit + 1) % 8;
            }
        }

        // ue(v): (leading zeros) 1 (value + 1 less its top bit)
        public void Ue(int value)
        {
            int x = value + 1, length = 32 - int.LeadingZeroCount(x);
            U(length - 1, 0);
            U(length, x);
        }

        public void Se(int value) => Ue(value > 0 ? 2 * value - 1 : -2 * value);

        public void Align()
        {
            while (bit != 0) U(1, 0);
        }

        // rbsp_trailing_bits: a 1, then zeros to the byte boundary
        public List<byte> Trailing()
        {
            U(1, 1);
            Align();
            return bytes;
        }
    }
}
