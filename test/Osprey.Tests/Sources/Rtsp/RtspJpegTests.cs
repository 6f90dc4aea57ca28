using OpenCvSharp;
using Osprey.Inference;
using Osprey.Sources;
using Osprey.Sources.Rtsp;
using Osprey.Tests.Data;
using Osprey.Tests.Models;
using static Osprey.Tests.Inference.PredictVideoFiles;

namespace Osprey.Tests.Sources.Rtsp;

/// <summary>
/// rtsp:// with RTP/JPEG (RFC 2435) from an in-process RTSP server: OpenCV-encoded JPEGs are cut into RTP packets
/// (headers stripped), and the frames Osprey's client rebuilds and decodes must equal OpenCV's decoding of the
/// original JPEGs bit for bit.
/// </summary>
public class RtspJpegTests
{
    private const ImwriteFlags SamplingFactor = (ImwriteFlags)7; // IMWRITE_JPEG_SAMPLING_FACTOR
    private const int Sampling420 = 0x221111, Sampling422 = 0x211111;

    [Theory]
    [InlineData(255, 90, Sampling420, 0)]  // tables in-band, new each frame
    [InlineData(128, 80, Sampling422, 0)]  // tables in-band (4:2:2, RTP type 0)
    [InlineData(75, 75, Sampling420, 0)]   // tables from Q = libjpeg's quality 75
    [InlineData(200, 95, Sampling420, 3)]  // restart markers every 3 MCUs (RTP type 65)
    public void FramesEqualOpenCvDecodingTheJpegs(int q, int quality, int sampling, int restartInterval)
    {
        var jpegs = Jpegs(5, 96, 64, quality, sampling, restartInterval);
        var packets = jpegs.Select(j => (IReadOnlyList<byte[]>)RtpJpegSender.Packets(j, q, maxPayload: 700)).ToList();
        Assert.All(packets, p => Assert.True(p.Count >= 2, "each frame should need several packets"));
        using var server = new RtspTestServer(RtpJpegSender.Sdp, packets, payloadType: 26);

        using var source = FrameSources.Open(server.Url());
        using var frame = new Mat();
        foreach (var jpeg in jpegs)
        {
            Assert.True(source.Next(1, frame));
            using var expected = Cv2.ImDecode(jpeg, ImreadModes.Color);
            Assert.Equal(expected.Size(), frame.Size());
            Assert.Equal(0, Cv2.Norm(expected, frame, NormTypes.INF));
        }
        Assert.False(source.Next(1, frame));
        Assert.Equal("RTSP JPEG, the server closed the stream", source.Description);
        Assert.Equal(new[] { "OPTIONS", "DESCRIBE", "SETUP", "PLAY" }, server.Methods);
    }

    /// <summary>The tables the RFC's headers are rebuilt with are libjpeg's: the DQT from Q equals OpenCV's at quality Q, the DHT its standard tables.</summary>
    [Fact]
    public void RebuiltHeaderTablesAreTheOnesLibjpegWrites()
    {
        foreach (int quality in new[] { 5, 30, 50, 75, 95, 99 })
        {
            var jpeg = Jpegs(1, 32, 16, quality, Sampling420, 0)[0];
            Assert.Equal(Segments(jpeg, 0xDB), Segments(JpegHeader.Build(1, 32, 16, JpegHeader.Tables(quality), 0, 0), 0xDB));
            Assert.Equal(Segments(jpeg, 0xC4), Segments(JpegHeader.Build(1, 32, 16, JpegHeader.Tables(quality), 0, 0), 0xC4));
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void BasicAndDigestAuthorisationFromTheUrl(bool digest)
    {
        var jpegs = Jpegs(2, 32, 32, 90, Sampling420, 0);
        using var server = new RtspTestServer(RtpJpegSender.Sdp, jpegs.Select(j => (IReadOnlyList<byte[]>)RtpJpegSender.Packets(j, 255)).ToList(),
            payloadType: 26, user: "cam", password: "p@ss", digest: digest);
        using (var source = FrameSources.Open($"rtsp://cam:p%40ss@127.0.0.1:{server.Port}/live"))
        using (var frame = new Mat())
        {
            Assert.True(source.Next(2, frame)); // vid_stride 2: the second frame
            using var expected = Cv2.ImDecode(jpegs[1], ImreadModes.Color);
            Assert.Equal(0, Cv2.Norm(expected, frame, NormTypes.INF));
        }
        var e = Assert.Throws<InvalidDataException>(() => FrameSources.Open($"rtsp://cam:wrong@127.0.0.1:{server.Port}/live"));
        Assert.Equal($"rtsp://127.0.0.1:{server.Port}/live: the server refuses OPTIONS (401 Unauthorized): wrong user or password.", e.Message);
        e = Assert.Throws<InvalidDataException>(() => FrameSources.Open(server.Url()));
        Assert.Equal($"{server.Url()}: the server refuses OPTIONS (401 Unauthorized): give user:password in the URL (rtsp://user:password@host/…).", e.Message);
    }

    [Fact]
    public void AStreamWithoutVideoOspreyCanReadSaysWhatItOffers()
    {
        const string sdp = "v=0\r\ns=x\r\nm=audio 0 RTP/AVP 0\r\na=control:trackID=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H265/90000\r\n";
        using var server = new RtspTestServer(sdp, new List<IReadOnlyList<byte[]>>(), payloadType: 96);
        var e = Assert.Throws<InvalidDataException>(() => FrameSources.Open(server.Url()));
        Assert.Equal($"{server.Url()}: the stream offers audio payload type 0, video H265; Osprey reads RTSP video as JPEG (RFC 2435) or H.264 (RFC 6184).", e.Message);
    }

    /// <summary>osprey predict source=rtsp://…: every frame (stream_buffer=True) predicted as the JPEGs predicted one by one.</summary>
    [Fact]
    public void PredictOnAnRtspStreamEqualsTheFramesPredictedAlone()
    {
        string dir = TestModels.TempDir();
        try
        {
            var jpegs = HttpTestServer.JpegFrames(4, 192, 112, step: 10);
            using var server = new RtspTestServer(RtpJpegSender.Sdp, jpegs.Select(j => (IReadOnlyList<byte[]>)RtpJpegSender.Packets(j, 255)).ToList(), payloadType: 26);
            string url = server.Url("cam");
            var args = Args(dir, url, ("save_txt", "True"), ("stream_buffer", "True"));
            var report = PredictRun.Run(args);

            Assert.Equal(4, report.Images);
            var decoded = jpegs.Select(j => Cv2.ImDecode(j, ImreadModes.Color)).ToList();
            var expected = PredictOneByOne(decoded, args);
            Assert.True(expected.Sum(p => p.Detections.Count) >= 4, "the frames should show people");
            for (int k = 1; k <= 4; k++) AssertLabels(Path.Combine(report.RunDirectory, "labels", $"cam_{k}.txt"), expected[k - 1]);
            Assert.Equal((4, 192, 112, 30.0), Describe(Path.Combine(report.RunDirectory, "cam.avi")));
            Assert.Contains($"{url}: 4 frames (RTSP JPEG, the server closed the stream) → {Path.Combine(report.RunDirectory, "cam.avi")}", report.Lines);
            foreach (var frame in decoded) frame.Dispose();
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>Frames of zidane.jpg shifted k·7 px, encoded by OpenCV with the given quality, chroma sampling and restart interval.</summary>
    internal static List<byte[]> Jpegs(int count, int width, int height, int quality, int sampling, int restartInterval)
    {
        using var source = Cv2.ImRead(Path.Combine(DataTestFiles.SharedData, "images", "zidane.jpg"));
        using var small = source.Resize(new Size(width, height), interpolation: InterpolationFlags.Area);
        var jpegs = new List<byte[]>();
        for (int k = 0; k < count; k++)
        {
            using var shift = Mat.FromArray(new double[,] { { 1, 0, 7 * k }, { 0, 1, 0 } });
            using var frame = small.WarpAffine(shift, small.Size(), borderMode: BorderTypes.Constant, borderValue: new Scalar(40, 80, 120));
            jpegs.Add(frame.ImEncode(".jpg", new ImageEncodingParam(ImwriteFlags.JpegQuality, quality), new ImageEncodingParam(SamplingFactor, sampling),
                new ImageEncodingParam(ImwriteFlags.JpegRstInterval, restartInterval)));
        }
        return jpegs;
    }

    // The bodies of a JPEG's segments with this marker, concatenated (up to the scan).
    private static byte[] Segments(byte[] jpeg, byte marker)
    {
        var bytes = new List<byte>();
        for (int at = 2; jpeg[at + 1] != 0xDA;)
        {
            int length = (jpeg[at + 2] << 8) | jpeg[at + 3];
            if (jpeg[at + 1] == marker) bytes.AddRange(jpeg.AsSpan(at + 4, length - 2).ToArray());
            at += 2 + length;
        }
        return bytes.ToArray();
    }
}
