using Osprey.Sources.Rtsp;

namespace Osprey.Tests.Sources.Rtsp;

/// <summary>RFC 6184 depacketizing of the packets a sender's bug or the network leaves incomplete.</summary>
public class H264DepacketizerTests
{
    static RtpPacket Packet(uint timestamp, bool marker, params byte[] payload) =>
        new(marker, 96, 0, timestamp, new ArraySegment<byte>(payload));

    static readonly byte[] StartCode = [0, 0, 0, 1];

    [Fact]
    public void FragmentWhoseEndNeverCameIsDroppedAtTheNextTimestamp()
    {
        var depacketizer = new H264Depacketizer(null);
        Assert.Null(depacketizer.Push(Packet(100, false, 0x65, 1, 2)));           // IDR slice, access unit 100 goes on
        Assert.Null(depacketizer.Push(Packet(100, false, 0x7C, 0x85, 9, 9)));     // FU-A start (IDR), its end never comes
        // access unit 200: the open fragment is dropped (counted), unit 100 is written without it, then unit 200
        byte[]? written = depacketizer.Push(Packet(200, true, 0x41, 7, 7));
        Assert.Equal([.. StartCode, 0x65, 1, 2, .. StartCode, 0x41, 7, 7], written);
        Assert.Equal(1, depacketizer.Dropped);
    }

    [Fact]
    public void FragmentsAreJoinedUnderTheRebuiltNalHeader()
    {
        var depacketizer = new H264Depacketizer(null);
        Assert.Null(depacketizer.Push(Packet(100, false, 0x7C, 0x85, 1, 2)));     // FU-A start: NRI 3, type 5
        Assert.Null(depacketizer.Push(Packet(100, false, 0x7C, 0x05, 3)));        // middle
        byte[]? written = depacketizer.Push(Packet(100, true, 0x7C, 0x45, 4));   // end, marker
        Assert.Equal([.. StartCode, 0x65, 1, 2, 3, 4], written);                 // header (0x7C & 0xE0) | 5 = 0x65
        Assert.Equal(0, depacketizer.Dropped);
    }
}
