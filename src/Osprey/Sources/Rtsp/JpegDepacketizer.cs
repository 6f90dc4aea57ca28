namespace Osprey.Sources.Rtsp;

/// <summary>
/// RTP/JPEG (RFC 2435): gathers a frame's fragments (by fragment offset, until the marker bit) and puts the JFIF
/// headers back (<see cref="JpegHeader"/>): types 0/1 (4:2:2/4:2:0) and 64/65 (with restart markers), Q 1 … 99
/// (tables from Q) or 128 … 255 (tables in-band in the first fragment; for Q &lt; 255 kept for later frames that leave
/// them out). A frame with a missing fragment, or of a type the RFC does not define, is dropped and counted.
/// </summary>
internal sealed class JpegDepacketizer
{
    private readonly List<byte> scan = new();
    private readonly Dictionary<int, (byte[] Tables, int Precision)> inBand = new();
    private byte[]? header;
    private int expected = -1; // the next fragment offset; -1 while waiting for a frame's first fragment
    private uint timestamp;

    /// <summary>Frames dropped: a fragment missing, or an undefined type.</summary>
    public int Dropped { get; private set; }

    /// <summary>Marks a gap in the packets (a sequence number skipped): the frame being gathered is dropped.</summary>
    public void Lost()
    {
        if (expected >= 0) Dropped++;
        expected = -1;
    }

    /// <summary>Takes one packet; returns a whole JPEG at the frame's last packet.</summary>
    public byte[]? Push(RtpPacket packet)
    {
        var p = packet.Payload.AsSpan();
        if (p.Length < 8) return Drop();
        int offset = (p[1] << 16) | (p[2] << 8) | p[3];
        int type = p[4], q = p[5], width = p[6] * 8, height = p[7] * 8;
        int at = 8, restart = 0;
        if (type >= 64 && type <= 127)
        {
            if (p.Length < at + 4) return Drop();
            restart = (p[at] << 8) | p[at + 1];
            at += 4;
        }
        if (offset == 0)
        {
            byte[] tables;
            int precision = 0;
            if (q >= 128)
            {
                if (p.Length < at + 4) return Drop();
                precision = p[at + 1];
                int length = (p[at + 2] << 8) | p[at + 3];
                at += 4;
                if (length > 0)
                {
                    if (p.Length < at + length) return Drop();
                    tables = p.Slice(at, length).ToArray();
                    at += length;
                    if (q < 255) inBand[q] = (tables, precision);
                }
                else if (inBand.TryGetValue(q, out var kept)) (tables, precision) = kept;
                else return Drop(); // RFC 2435 4.2: tables not yet sent for this Q
            }
            else tables = JpegHeader.Tables(q);
            if (expected >= 0) Dropped++; // the previous frame never ended
            expected = -1;
            if ((type & 0x3F) > 1)
            {
                Dropped++;
                return null;
            }
            header = JpegHeader.Build(type, width, height, tables, precision, type >= 64 ? restart : 0);
            scan.Clear();
            expected = 0;
            timestamp = packet.Timestamp;
        }
        if (expected < 0) return null;
        if (offset != expected || packet.Timestamp != timestamp) return Drop();
        var data = p[at..];
        foreach (byte b in data) scan.Add(b);
        expected += data.Length;
        if (!packet.Marker) return null;
        expected = -1;
        bool ended = scan.Count >= 2 && scan[^2] == 0xFF && scan[^1] == 0xD9;
        var jpeg = new byte[header!.Length + scan.Count + (ended ? 0 : 2)];
        header.CopyTo(jpeg, 0);
        scan.CopyTo(jpeg, header.Length);
        if (!ended)
        {
            jpeg[^2] = 0xFF;
            jpeg[^1] = 0xD9;
        }
        return jpeg;
    }

    // Drops the frame being gathered (counted once: later fragments of it find nothing being gathered).
    private byte[]? Drop()
    {
        Lost();
        return null;
    }
}
