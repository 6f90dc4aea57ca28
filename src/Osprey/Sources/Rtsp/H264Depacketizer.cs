namespace Osprey.Sources.Rtsp;

/// <summary>
/// RTP/H.264 (RFC 6184, packetization modes 0 and 1): single NAL unit packets, STAP-A (several NAL units in one packet)
/// and FU-A (one NAL unit in fragments), written out as an Annex-B byte stream (each NAL unit after 00 00 00 01), one
/// access unit (a timestamp's NAL units, ending at the marker bit) at a time. The SPS and PPS of
/// <c>sprop-parameter-sets</c> go before the first unit. A NAL unit with a fragment missing is dropped and counted.
/// </summary>
internal sealed class H264Depacketizer
{
    private static readonly byte[] StartCode = { 0, 0, 0, 1 };
    private readonly MemoryStream unit = new();
    private readonly List<byte> fragment = new();
    private bool inFragment;
    private uint timestamp;

    /// <param name="parameterSets">The SDP's <c>sprop-parameter-sets</c> (base64 NAL units, comma-separated), or null.</param>
    public H264Depacketizer(string? parameterSets)
    {
        foreach (string set in (parameterSets ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            byte[] nal;
            try
            {
                nal = Convert.FromBase64String(set);
            }
            catch (FormatException)
            {
                continue; // a broken parameter set: the stream may carry its own in-band
            }
            Append(nal);
        }
    }

    /// <summary>NAL units dropped for a missing fragment, and packets of a NAL type RFC 6184's modes 0 and 1 do not allow.</summary>
    public int Dropped { get; private set; }

    /// <summary>A sequence number was skipped: a NAL unit being gathered from fragments is dropped.</summary>
    public void Lost()
    {
        if (!inFragment) return;
        inFragment = false;
        fragment.Clear();
        Dropped++;
    }

    /// <summary>Takes one packet; returns the Annex-B bytes of an access unit when one is complete (marker bit, or a new timestamp).</summary>
    public byte[]? Push(RtpPacket packet)
    {
        byte[]? done = null;
        if (packet.Timestamp != timestamp && inFragment) Lost(); // a fragment's end never came (a sender bug): drop it, do not merge units
        if (unit.Length > 0 && packet.Timestamp != timestamp) done = Flush();
        timestamp = packet.Timestamp;
        var p = packet.Payload.AsSpan();
        if (p.Length < 1) return done;
        int type = p[0] & 0x1F;
        if (type is >= 1 and <= 23) Append(p);
        else if (type == 24) // STAP-A: [16-bit size, NAL unit] …
        {
            for (int at = 1; at + 2 <= p.Length;)
            {
                int size = (p[at] << 8) | p[at + 1];
                at += 2;
                if (size == 0 || at + size > p.Length)
                {
                    Dropped++;
                    break;
                }
                Append(p.Slice(at, size));
                at += size;
            }
        }
        else if (type == 28 && p.Length >= 2) // FU-A: indicator, header (S, E, R, type), fragment
        {
            bool start = (p[1] & 0x80) != 0, end = (p[1] & 0x40) != 0;
            if (start)
            {
                if (inFragment) Dropped++;
                fragment.Clear();
                fragment.Add((byte)((p[0] & 0xE0) | (p[1] & 0x1F)));
                inFragment = true;
            }
            if (inFragment)
            {
                foreach (byte b in p[2..]) fragment.Add(b);
                if (end)
                {
                    Append(fragment.ToArray());
                    fragment.Clear();
                    inFragment = false;
                }
            }
        }
        else Dropped++;
        if (!packet.Marker || inFragment || unit.Length == 0) return done;
        var now = Flush();
        return done is null ? now : [.. done, .. now];
    }

    private void Append(ReadOnlySpan<byte> nal)
    {
        unit.Write(StartCode);
        unit.Write(nal);
    }

    private byte[] Flush()
    {
        var bytes = unit.ToArray();
        unit.SetLength(0);
        return bytes;
    }
}
