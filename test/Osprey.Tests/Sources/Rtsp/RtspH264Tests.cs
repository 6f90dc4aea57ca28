using OpenCvSharp;
using Osprey.Inference;
using Osprey.Sources;
using Osprey.Tests.Models;
using static Osprey.Tests.Inference.PredictVideoFiles;

namespace Osprey.Tests.Sources.Rtsp;

/// <summary>
/// rtsp:// with H.264 (RFC 6184) from an in-process RTSP server: I_PCM pictures (lossless) sent as STAP-A, FU-A and
/// single NAL unit packets; the frames the bundled FFmpeg decodes from Osprey's Annex-B pipe must be the source pictures
/// (up to the YUV 4:2:0 → BGR conversion, which OpenCV and FFmpeg round differently).
/// </summary>
public class RtspH264Tests
{
    [Fact]
    public void PcmPicturesComeBackThroughTheDecoder()
    {
        const int width = 64, height = 48, count = 5;
        var (frames, i420, sdp, packets) = PcmStream(count, width, height);
        using var server = new RtspTestServer(sdp, packets, payloadType: 96);

        using var source = FrameSources.Open(server.Url());
        using var decoded = new Mat();
        for (int k = 0; k < count; k++)
        {
            Assert.True(source.Next(1, decoded), $"frame {k + 1} missing ({source.Description})");
            Assert.Equal(new Size(width, height), decoded.Size());
            // the decoded picture's samples are the ones sent: converted back to I420, luma within rounding of the BGR step
            using var back = decoded.CvtColor(ColorConversionCodes.BGR2YUV_I420);
            using var lumaSent = i420[k].RowRange(0, height);
            using var lumaBack = back.RowRange(0, height);
            Assert.True(Cv2.Norm(lumaSent, lumaBack, NormTypes.INF) <= 3, $"frame {k + 1}: luma differs by {Cv2.Norm(lumaSent, lumaBack, NormTypes.INF)}");
            using var expected = i420[k].CvtColor(ColorConversionCodes.YUV2BGR_I420);
            double meanDifference = Cv2.Norm(expected, decoded, NormTypes.L1) / (width * height * 3);
            Assert.True(meanDifference < 2.5, $"frame {k + 1}: mean BGR difference {meanDifference}");
            // … and not any other frame's
            if (k > 0)
            {
                using var previous = i420[k - 1].RowRange(0, height);
                Assert.True(Cv2.Norm(previous, lumaBack, NormTypes.INF) > 30);
            }
        }
        Assert.False(source.Next(1, decoded));
        Assert.Equal("RTSP H.264, the server closed the stream", source.Description);
        foreach (var m in frames.Concat(i420)) m.Dispose();
    }

    /// <summary>A .streams file of an H.264 and a JPEG RTSP stream: batches of two until the shorter (4 JPEG frames) ends.</summary>
    [Fact]
    public void StreamsFileBatchesAnH264AndAJpegRtspStream()
    {
        string dir = TestModels.TempDir();
        try
        {
            var (frames, i420, sdp, packets) = PcmStream(6, 96, 64);
            using var h264 = new RtspTestServer(sdp, packets, payloadType: 96);
            var jpegs = RtspJpegTests.Jpegs(4, 96, 64, 90, 0x221111, 0);
            using var jpeg = new RtspTestServer(RtpJpegSender.Sdp, jpegs.Select(j => (IReadOnlyList<byte[]>)RtpJpegSender.Packets(j, 255)).ToList(), payloadType: 26);
            string streams = Path.Combine(dir, "cams.streams");
            File.WriteAllLines(streams, new[] { h264.Url("h264cam"), jpeg.Url("jpegcam") });
            var report = PredictRun.Run(Args(dir, streams, ("stream_buffer", "True")));

            Assert.Equal(4, report.InputShapes.Count);
            Assert.All(report.InputShapes, s => Assert.Equal(new long[] { 2, 3, ImageSize, ImageSize }, s));
            Assert.Equal((4, 96, 64, 30.0), Describe(Path.Combine(report.RunDirectory, "h264cam.avi")));
            Assert.Equal((4, 96, 64, 30.0), Describe(Path.Combine(report.RunDirectory, "jpegcam.avi")));
            Assert.Contains(report.Lines, l => l.StartsWith($"{h264.Url("h264cam")}: 4 frames (RTSP H.264, ", StringComparison.Ordinal));
            Assert.Contains(report.Lines, l => l.StartsWith($"{jpeg.Url("jpegcam")}: 4 frames (RTSP JPEG, the server closed the stream)", StringComparison.Ordinal));
            foreach (var m in frames.Concat(i420)) m.Dispose();
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    // count I_PCM pictures of shifted zidane frames: BGR frames, their I420 planes, the SDP, and each frame's RTP payloads
    // (the first with a STAP-A of SPS and PPS; even frames' slices as FU-A fragments, odd ones as single NAL unit packets)
    private static (List<Mat> Frames, List<Mat> I420, string Sdp, List<IReadOnlyList<byte[]>> Packets) PcmStream(int count, int width, int height)
    {
        var frames = RtspJpegTests.Jpegs(count, width, height, 95, 0x221111, 0).Select(j => Cv2.ImDecode(j, ImreadModes.Color)).ToList();
        var i420 = frames.Select(f => f.CvtColor(ColorConversionCodes.BGR2YUV_I420)).ToList();
        byte[] sps = H264PcmStream.Sps(width, height), pps = H264PcmStream.Pps();
        var packets = new List<IReadOnlyList<byte[]>>();
        for (int k = 0; k < count; k++)
        {
            i420[k].GetArray(out byte[] planes);
            int luma = width * height, chroma = luma / 4;
            var slice = H264PcmStream.IdrSlice(planes[..luma], planes[luma..(luma + chroma)], planes[(luma + chroma)..], width, height, k % 2);
            var frame = new List<byte[]>();
            if (k == 0) frame.Add(StapA(sps, pps));
            if (k % 2 == 0) frame.AddRange(FuA(slice, 900));
            else frame.Add(slice);
            packets.Add(frame);
        }
        string sdp = "v=0\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n" +
            $"a=fmtp:96 packetization-mode=1;profile-level-id=42001e;sprop-parameter-sets={Convert.ToBase64String(sps)},{Convert.ToBase64String(pps)}\r\n" +
            "a=control:trackID=0\r\n";
        return (frames, i420, sdp, packets);
    }

    private static byte[] StapA(params byte[][] nals)
    {
        var packet = new List<byte> { 24 | 0x60 };
        foreach (var nal in nals)
        {
            packet.Add((byte)(nal.Length >> 8));
            packet.Add((byte)nal.Length);
            packet.AddRange(nal);
        }
        return packet.ToArray();
    }

    private static IEnumerable<byte[]> FuA(byte[] nal, int size)
    {
        for (int at = 1; at < nal.Length; at += size)
        {
            int n = Math.Min(size, nal.Length - at);
            byte header = (byte)((at == 1 ? 0x80 : 0) | (at + n == nal.Length ? 0x40 : 0) | (nal[0] & 0x1F));
            yield return [(byte)((nal[0] & 0xE0) | 28), header, .. nal.AsSpan(at, n)];
        }
    }
}
