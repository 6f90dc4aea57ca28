namespace Osprey.Tests.Sources.Rtsp;

/// <summary>
/// The sending side of RTP/JPEG (RFC 2435), written from the RFC for the tests: takes a baseline JFIF (as OpenCV
/// encodes it), keeps only its entropy-coded scan, and cuts it into fragments with the RTP/JPEG header (type 0/1 from
/// the luma sampling, +64 with a restart interval), the restart header, and the quantisation tables in-band in the
/// first fragment when Q ≥ 128.
/// </summary>
internal static class RtpJpegSender
{
    /// <summary>The payloads of one frame's packets.</summary>
    public static List<byte[]> Packets(byte[] jpeg, int q, int maxPayload = 1000)
    {
        var tables = new List<byte>();
        int width = 0, height = 0, type = -1, restart = 0, scan = -1;
        for (int at = 2; scan < 0;)
        {
            Assert.Equal(0xFF, jpeg[at]);
            byte marker = jpeg[at + 1];
            int length = (jpeg[at + 2] << 8) | jpeg[at + 3];
            var body = jpeg.AsSpan(at + 4, length - 2);
            switch (marker)
            {
                case 0xDB: // DQT: [Pq|Tq, 64 values] …
                    for (int i = 0; i < body.Length; i += 65)
                    {
                        Assert.Equal(tables.Count / 64, body[i]); // 8-bit tables 0, then 1 (one segment each, or both in one)
                        tables.AddRange(body.Slice(i + 1, 64).ToArray());
                    }
                    break;
                case 0xC0:
                    height = (body[1] << 8) | body[2];
                    width = (body[3] << 8) | body[4];
                    Assert.Equal(3, body[5]);
                    type = body[7] switch { 0x21 => 0, 0x22 => 1, _ => throw new InvalidDataException($"luma sampling {body[7]:x2}") };
                    Assert.Equal(0x11, body[10]);
                    Assert.Equal(0x11, body[13]);
                    break;
                case 0xDD:
                    restart = (body[0] << 8) | body[1];
                    break;
                case 0xDA:
                    scan = at + 2 + length;
                    break;
            }
            at += 2 + length;
        }
        if (restart > 0) type += 64;
        Assert.Equal(128, tables.Count);
        var data = jpeg.AsSpan(scan, jpeg.Length - 2 - scan); // less the EOI marker, which the receiver adds
        var packets = new List<byte[]>();
        for (int offset = 0; offset < data.Length;)
        {
            var packet = new List<byte> { 0, (byte)(offset >> 16), (byte)(offset >> 8), (byte)offset, (byte)type, (byte)q, (byte)(width / 8), (byte)(height / 8) };
            if (restart > 0) packet.AddRange(new byte[] { (byte)(restart >> 8), (byte)restart, 0xFF, 0xFF }); // F = L = 1, count 0x3FFF
            if (q >= 128 && offset == 0)
            {
                packet.AddRange(new byte[] { 0, 0, 0, 128 });
                packet.AddRange(tables);
            }
            int size = Math.Min(maxPayload - packet.Count, data.Length - offset);
            packet.AddRange(data.Slice(offset, size).ToArray());
            packets.Add(packet.ToArray());
            offset += size;
        }
        return packets;
    }

    /// <summary>An SDP with one video stream of payload type 26 (JPEG), control trackID=0.</summary>
    public const string Sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=osprey test\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\na=control:trackID=9\r\n" +
        "m=video 0 RTP/AVP 26\r\na=control:trackID=0\r\n";
}
